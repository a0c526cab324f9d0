//! Test keys made with gpg (the product never runs gpg): another key, an expired key, a key
//! revoked after signing, each a certify-only primary key with a signing subkey, and re-signing a
//! mirror copy with one of them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A throw-away GnuPG home with one key.
pub struct TestKey {
    pub home: tempfile::TempDir,
    pub fpr: String,
    /// Extra gpg arguments for signing (a faked time for the expired key).
    pub sign_args: Vec<String>,
}

impl Drop for TestKey {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

fn gpg(home: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args([
            "--batch",
            "--quiet",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ])
        .args(args)
        .output()
        .expect("run gpg (apt-get install gnupg)");
    assert!(
        out.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// How to make the key.
pub enum Kind {
    Plain,
    /// Made in 2020 with a subkey valid for one day, signing in 2020: expired now.
    Expired,
}

impl TestKey {
    pub fn new(kind: Kind) -> TestKey {
        let home = tempfile::Builder::new()
            .prefix("bh-gpg-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(
            home.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let time: Vec<String> = match kind {
            Kind::Expired => vec!["--faked-system-time".into(), "20200101T000000!".into()],
            _ => vec![],
        };
        let t: Vec<&str> = time.iter().map(String::as_str).collect();
        let uid = "build-helper test key <test@build-helper.invalid>";
        gpg(
            home.path(),
            &[
                &t[..],
                &["--quick-gen-key", uid, "ed25519", "cert", "never"],
            ]
            .concat(),
        );
        let listing =
            String::from_utf8(gpg(home.path(), &["--with-colons", "--list-keys"])).unwrap();
        let fpr = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.split(':').nth(8))
            .unwrap()
            .to_string();
        let expire = if matches!(kind, Kind::Expired) {
            "1d"
        } else {
            "never"
        };
        gpg(
            home.path(),
            &[
                &t[..],
                &["--quick-add-key", &fpr, "ed25519", "sign", expire],
            ]
            .concat(),
        );
        TestKey {
            home,
            fpr,
            sign_args: time,
        }
    }

    /// Revokes the primary key (importing the revocation certificate gpg made with it).
    pub fn revoke(&self) {
        let rev = self
            .home
            .path()
            .join(format!("openpgp-revocs.d/{}.rev", self.fpr));
        let text = std::fs::read_to_string(&rev)
            .unwrap()
            .replace(":-----", "-----");
        std::fs::write(&rev, text).unwrap();
        gpg(self.home.path(), &["--import", rev.to_str().unwrap()]);
    }

    /// Writes the armored public key to `path`.
    pub fn export(&self, path: &Path) {
        std::fs::write(
            path,
            gpg(self.home.path(), &["--armor", "--export", &self.fpr]),
        )
        .unwrap();
    }

    /// Clear-signs `text`.
    pub fn clearsign(&self, text: &str) -> String {
        let tmp = self.home.path().join("in.txt");
        std::fs::write(&tmp, text).unwrap();
        let t: Vec<&str> = self.sign_args.iter().map(String::as_str).collect();
        let args = [
            &t[..],
            &["--local-user", &self.fpr, "--clearsign", "--output", "-"],
            &[tmp.to_str().unwrap()],
        ]
        .concat();
        String::from_utf8(gpg(self.home.path(), &args)).unwrap()
    }

    /// A detached armored signature of `file` made with SHA512 (as Gentoo's).
    pub fn detach_sign(&self, file: &Path) -> Vec<u8> {
        self.detach_sign_with(file, "SHA512")
    }

    /// A detached armored signature of `file` made with the digest `algo` (`SHA256`...).
    pub fn detach_sign_with(&self, file: &Path, algo: &str) -> Vec<u8> {
        let t: Vec<&str> = self.sign_args.iter().map(String::as_str).collect();
        let args = [
            &t[..],
            &["--local-user", &self.fpr, "--digest-algo", algo],
            &["--armor", "--detach-sign", "--output", "-"],
            &[file.to_str().unwrap()],
        ]
        .concat();
        gpg(self.home.path(), &args)
    }

    /// Re-signs the index, the DIGESTS and the tarball of the mirror at `root` with this key.
    pub fn resign_mirror(&self, root: &Path) {
        for file in signed_files(root) {
            if file.extension().is_some_and(|e| e == "asc") {
                let tarball = file.with_extension("");
                std::fs::write(&file, self.detach_sign(&tarball)).unwrap();
            } else {
                let text = std::fs::read_to_string(&file).unwrap();
                let body = build_helper::stage3::signed_body(&text)
                    .unwrap()
                    .into_owned();
                std::fs::write(&file, self.clearsign(&format!("{body}\n"))).unwrap();
            }
        }
    }
}

/// The index, the DIGESTS and the tarball's `.asc` of a mirror.
pub fn signed_files(root: &Path) -> Vec<PathBuf> {
    let dir = root.join("releases/amd64/autobuilds");
    let mut out = Vec::new();
    for e in walk(&dir) {
        let name = e.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("latest-stage3-")
            || name.ends_with(".DIGESTS")
            || name.ends_with(".tar.xz.asc")
        {
            out.push(e);
        }
    }
    out
}

/// Every file below `dir`.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
