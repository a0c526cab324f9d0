//! The demo mirror a test process builds once under /tmp (`<prefix>-<pid>`), removed when
//! the process exits (atexit: after the last test, pass or fail), and mirrors left by test
//! processes that died (their pid is gone) removed before a new one is built.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

static DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_mirror() {
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Builds the demo mirror with scripts/demo-mirror.sh into `/tmp/<prefix>-<pid>` on the first
/// call and returns its path.
pub fn demo_mirror(prefix: &str) -> &'static Path {
    DIR.get_or_init(|| {
        let tmp = std::env::temp_dir();
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let pid = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-'));
                if let Some(pid) =
                    pid.filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let dir = tmp.join(format!("{prefix}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // SAFETY: registers a plain function with the C library; it only reads DIR.
        unsafe { libc::atexit(remove_mirror) };
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo-mirror.sh");
        let status = Command::new(script)
            .arg(&dir)
            .status()
            .expect("run scripts/demo-mirror.sh");
        assert!(status.success(), "demo-mirror.sh failed");
        dir
    })
}
