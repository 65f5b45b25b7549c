//! The UI's logic that needs no browser (`ui-tests/*.test.mjs`: completion
//! contexts, silence matchers, variable interpolation, times, the fleet
//! tree, /metrics sums) under Node's own test runner. The browser test is
//! `tests/ui.rs` at the workspace root.

use std::path::Path;
use std::process::Command;

#[test]
fn ui_logic_passes_its_node_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = match Command::new("node").arg("--test").arg(dir.join("ui-tests")).output() {
        Ok(out) => out,
        Err(e) => {
            assert!(
                std::env::var_os("SIGHTLINE_REQUIRE_EXTERNAL").is_none(),
                "node is required but cannot run: {e}"
            );
            eprintln!("SKIPPED: node is not installed ({e}); .ci/run installs it");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node --test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The runner found and ran the tests (an empty run also succeeds).
    let passed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(passed >= 7, "only {passed} node tests passed:\n{stdout}");
}
