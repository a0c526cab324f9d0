//! The demo mirror a test process builds once under /tmp (`<prefix>-<pid>`), removed when
//! the process exits (atexit: after the last test, pass or fail), and mirrors left by test
//! processes that died (their pid is gone) removed before a new one is built.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The mirror's directory, or what scripts/demo-mirror.sh said is missing.
static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();

extern "C" fn remove_mirror() {
    if let Some(Ok(dir)) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Builds the demo mirror with scripts/demo-mirror.sh into `/tmp/<prefix>-<pid>` on the first
/// call and returns its path; panics if it cannot be built.
pub fn demo_mirror(prefix: &str) -> &'static Path {
    match try_demo_mirror(prefix) {
        Ok(dir) => dir,
        Err(missing) => panic!("demo-mirror.sh failed: {missing}"),
    }
}

/// [`demo_mirror`], or the line in which scripts/demo-mirror.sh named what it needs and is
/// missing (its exit status 2: a package that scripts/install-deps.sh installs); panics if
/// the script fails otherwise.
pub fn try_demo_mirror(prefix: &str) -> Result<&'static Path, &'static str> {
    let built = DIR.get_or_init(|| {
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
        let out = Command::new(script)
            .arg(&dir)
            .stderr(Stdio::piped())
            .output()
            .expect("run scripts/demo-mirror.sh");
        // Its report shows as before: straight to the descriptors, past libtest's capture.
        let _ = std::io::stdout().write_all(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(2) {
            return Err(stderr.trim().to_string());
        }
        let _ = std::io::stderr().write_all(stderr.as_bytes());
        assert!(out.status.success(), "demo-mirror.sh failed");
        Ok(dir)
    });
    match built {
        Ok(dir) => Ok(dir),
        Err(missing) => Err(missing),
    }
}
