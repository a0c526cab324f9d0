//! The Gentoo overlay in `packaging/gentoo`, checked without a Gentoo repository:
//! - the versioned ebuild's CRATES and LICENSE are what pycargoebuild makes of Cargo.lock
//!   today (`scripts/update-ebuild.sh --check`), so they never drift;
//! - both ebuilds source in bash (with Portage and the eclasses stubbed by
//!   `tests/ebuild/stub-eclasses.sh`) as EAPI 8, every crates.io crate of Cargo.lock is in
//!   the versioned one's SRC_URI, and their src_compile + src_install, run with the real
//!   binary, install it with one man page per command and the bash, zsh and fish
//!   completions.
//!
//! `pkgcheck scan` (docs/install.md) checks the rest on a machine with the Gentoo
//! repository.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/skip.rs"]
mod skip;

const SRC: &str = env!("CARGO_MANIFEST_DIR");
const BIN: &str = env!("CARGO_BIN_EXE_build-helper");

fn overlay_package() -> PathBuf {
    Path::new(SRC).join("packaging/gentoo/dev-util/build-helper")
}

fn versioned_ebuild() -> PathBuf {
    overlay_package().join(format!("build-helper-{}.ebuild", env!("CARGO_PKG_VERSION")))
}

/// `(name, version)` of every crates.io package in Cargo.lock.
fn locked_crates() -> Vec<(String, String)> {
    let lock: toml::Value =
        toml::from_str(&std::fs::read_to_string(Path::new(SRC).join("Cargo.lock")).unwrap())
            .unwrap();
    lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p.get("source")
                .and_then(|s| s.as_str())
                .is_some_and(|s| s.starts_with("registry+"))
        })
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// What sourcing `ebuild` with the stubs, then running `script` in that environment, prints;
/// panics with bash's stderr when it fails. `work` is the scratch directory.
fn in_ebuild_env(ebuild: &Path, work: &Path, script: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -eu\nsource tests/ebuild/stub-eclasses.sh\nsource \"$EBUILD\"\n{script}"
        ))
        .current_dir(SRC)
        .env("EBUILD", ebuild)
        .env("WORKDIR", work)
        .env("BH_TARGET_DIR", Path::new(BIN).parent().unwrap())
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{}: {}",
        ebuild.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn versioned_ebuild_crates_and_license_match_pycargoebuild_on_cargo_lock() {
    if !skip::require_tool("pycargoebuild") {
        return;
    }
    let out = Command::new(Path::new(SRC).join("scripts/update-ebuild.sh"))
        .arg("--check")
        .current_dir(SRC)
        .output()
        .expect("run scripts/update-ebuild.sh");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn versioned_ebuild_is_eapi8_and_fetches_every_locked_crate() {
    let work = tempfile::tempdir().unwrap();
    let out = in_ebuild_env(
        &versioned_ebuild(),
        work.path(),
        r#"printf 'EAPI=%s\nINHERITED=%s\n' "$EAPI" "$INHERITED"; printf '%s\n' $SRC_URI"#,
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("EAPI=8"));
    assert_eq!(lines.next(), Some("INHERITED= cargo shell-completion"));
    let uris: Vec<&str> = lines.collect();
    let crates = locked_crates();
    assert!(crates.len() > 100, "Cargo.lock parsed wrong: {crates:?}");
    for (name, version) in &crates {
        let uri = format!("https://crates.io/api/v1/crates/{name}/{version}/download");
        assert!(
            uris.contains(&uri.as_str()),
            "{name}@{version} of Cargo.lock is not in SRC_URI: run scripts/update-ebuild.sh"
        );
    }
    let tarball = format!(
        "https://github.com/armtux/build-helper/archive/refs/tags/v{}.tar.gz",
        env!("CARGO_PKG_VERSION")
    );
    assert!(uris.contains(&tarball.as_str()), "{uris:?}");
}

#[test]
fn live_ebuild_is_eapi8_git_without_crates_or_keywords() {
    let work = tempfile::tempdir().unwrap();
    let out = in_ebuild_env(
        &overlay_package().join("build-helper-9999.ebuild"),
        work.path(),
        r#"printf '%s|%s|%s|%s|%s\n' "$EAPI" "$INHERITED" "${SRC_URI-}" "${KEYWORDS-}" "$EGIT_REPO_URI"
        declare -F src_unpack >/dev/null"#,
    );
    assert_eq!(
        out,
        "8| cargo git-r3 shell-completion|||https://github.com/armtux/build-helper.git\n"
    );
}

/// Every page `build-helper generate man` writes, by file name.
fn generated_pages() -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["generate", "man"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    pages
}

#[test]
fn both_ebuilds_install_binary_man_pages_and_completions() {
    let pages = generated_pages();
    assert!(pages.contains(&"build-helper.1".to_string()), "{pages:?}");
    assert!(
        pages.contains(&"build-helper-run.1".to_string()),
        "{pages:?}"
    );
    assert!(
        !pages.iter().any(|p| p.contains("worker")),
        "hidden command documented: {pages:?}"
    );
    for ebuild in [
        versioned_ebuild(),
        overlay_package().join("build-helper-9999.ebuild"),
    ] {
        let work = tempfile::tempdir().unwrap();
        in_ebuild_env(&ebuild, work.path(), "src_compile\nsrc_install");
        let image = work.path().join("image/usr");
        let bin = image.join("bin/build-helper");
        let version = Command::new(&bin).arg("--version").output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&version.stdout),
            format!("build-helper {}\n", env!("CARGO_PKG_VERSION"))
        );
        let mut installed: Vec<String> = std::fs::read_dir(image.join("share/man/man1"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        installed.sort();
        assert_eq!(installed, pages, "{}", ebuild.display());
        for (file, needle) in [
            (
                "share/bash-completion/completions/build-helper",
                "complete -F",
            ),
            (
                "share/zsh/site-functions/_build-helper",
                "#compdef build-helper",
            ),
            (
                "share/fish/vendor_completions.d/build-helper.fish",
                "complete -c build-helper",
            ),
        ] {
            let text = std::fs::read_to_string(image.join(file))
                .unwrap_or_else(|e| panic!("{}: {file}: {e}", ebuild.display()));
            assert!(text.contains(needle), "{file}: {needle} missing");
            assert!(text.contains("history"), "{file}: subcommands missing");
        }
        let pf = ebuild.file_stem().unwrap().to_str().unwrap();
        assert!(image.join("share/doc").join(pf).join("README.md").is_file());
    }
}
