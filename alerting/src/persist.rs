//! Crash-safe small state files (alert state, inventory, Alertmanager
//! state): written whole to a temporary file, fsynced, renamed over the
//! old one, and the directory fsynced, so a crash leaves the old or the
//! new file, never a torn one.

use std::io::Write;
use std::path::Path;

/// Writes `value` as JSON to `path` atomically and durably.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = dir
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("state.json");
        super::write_json_atomic(&path, &vec![1, 2]).unwrap();
        super::write_json_atomic(&path, &vec![3]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[3]");
        assert!(!path.with_extension("json.tmp").exists());
    }
}
