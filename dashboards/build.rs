//! Compiles the UI's files (`ui/`) and the Grafana dashboards
//! (`grafana/*.json`) into the crate: `assets.rs` in `OUT_DIR` lists each
//! with `include_bytes!`, so the binary serves them with no files beside
//! it and no build step of its own.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let mut out = String::new();
    out.push_str("/// The UI's files: (path under `/ui/`, bytes).\npub static UI_FILES: &[(&str, &[u8])] = &[\n");
    for file in files(&root.join("ui")) {
        let rel = file
            .strip_prefix(root.join("ui"))
            .expect("under ui")
            .to_string_lossy()
            .replace('\\', "/");
        writeln!(out, "    ({rel:?}, include_bytes!({:?})),", file.display().to_string()).expect("write");
    }
    out.push_str(
        "];\n/// The Grafana dashboards: (file name, JSON text).\npub static DASHBOARD_FILES: &[(&str, &str)] = &[\n",
    );
    for file in files(&root.join("grafana"))
        .into_iter()
        .filter(|f| f.extension().is_some_and(|x| x == "json"))
    {
        let name = file.file_name().expect("name").to_string_lossy().to_string();
        writeln!(out, "    ({name:?}, include_str!({:?})),", file.display().to_string()).expect("write");
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("assets.rs");
    std::fs::write(dest, out).expect("write assets.rs");
    println!("cargo:rerun-if-changed=ui");
    println!("cargo:rerun-if-changed=grafana");
}

/// Every file under `dir`, sorted (directories are watched too, so a new
/// file rebuilds).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        println!("cargo:rerun-if-changed={}", d.display());
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot read {}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}
