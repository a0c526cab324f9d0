//! The portable tarball of `scripts/dist.sh`, built once per test process into
//! `target/bh-dist-e2e`: its contents and DIGESTS, the binary's ELF dependencies and glibc
//! floor, and the binary run in a clean Debian minbase chroot without Rust
//! (`scripts/minbase-chroot.sh`, cached in `target/bh-minbase` or `$BH_MINBASE`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::Digest;

use super::common::*;

/// The highest glibc symbol version the tarball's binary may need: the floor docs/install.md
/// states. Debian 12's toolchain links Rust's start-up code against
/// `__libc_start_main@GLIBC_2.34`, so it cannot be lower with it.
const GLIBC_FLOOR: (u32, u32) = (2, 34);

/// The only shared libraries the binary may load: glibc's (C library, libm, the dynamic
/// loader) and the GCC runtime's unwinder, which Rust's standard library links on
/// `*-linux-gnu` and which every glibc system has. liblzma must not be here (compiled in).
const ALLOWED_NEEDED: [&str; 4] = [
    "libc.so.6",
    "libm.so.6",
    "ld-linux-x86-64.so.2",
    "libgcc_s.so.1",
];

struct Dist {
    tarball: PathBuf,
    /// The tarball unpacked (outside any chroot), for inspection.
    unpacked: PathBuf,
    /// `build-helper-<version>-x86_64-linux`.
    name: String,
}

fn target_dir() -> PathBuf {
    Path::new(BIN).ancestors().nth(2).unwrap().to_path_buf()
}

/// The tarball, built once per test process by `scripts/dist.sh`.
fn dist() -> &'static Dist {
    static DIST: OnceLock<Dist> = OnceLock::new();
    DIST.get_or_init(|| {
        let out = target_dir().join("bh-dist-e2e");
        let _ = std::fs::remove_dir_all(&out);
        let output = {
            // The release build loads both cores: not while latencies are measured.
            let _heavy = heavy_lock();
            Command::new(format!("{SRC}/scripts/dist.sh"))
                .arg(&out)
                .output()
                .expect("run scripts/dist.sh")
        };
        assert!(
            output.status.success(),
            "scripts/dist.sh failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let name = format!("build-helper-{}-x86_64-linux", env!("CARGO_PKG_VERSION"));
        let tarball = out.join(format!("{name}.tar.gz"));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            tarball.to_str().unwrap()
        );
        let unpacked = out.join("unpacked");
        std::fs::create_dir_all(&unpacked).unwrap();
        let st = Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpacked)
            .status()
            .unwrap();
        assert!(st.success());
        Dist {
            tarball,
            unpacked,
            name,
        }
    })
}

#[test]
fn dist_tarball_holds_binary_pages_completions_docs_and_verifies_its_digests() {
    let d = dist();
    let top = d.unpacked.join(&d.name);
    let mut entries: Vec<String> = std::fs::read_dir(&d.unpacked)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    assert_eq!(entries, [d.name.as_str()], "one top directory");
    for f in [
        "bin/build-helper",
        "README.md",
        "LICENSE",
        "docs/install.md",
        "docs/recipe.md",
        "share/man/man1/build-helper.1",
        "share/man/man1/build-helper-run.1",
        "share/man/man1/build-helper-history-prune.1",
        "share/bash-completion/completions/build-helper",
        "share/zsh/site-functions/_build-helper",
        "share/fish/vendor_completions.d/build-helper.fish",
    ] {
        let meta = std::fs::metadata(top.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(meta.len() > 0, "{f} is empty");
    }
    // The pages are the binary's own: one per visible command.
    let expected = tempfile::tempdir().unwrap();
    let st = Command::new(BIN)
        .args(["generate", "man"])
        .arg(expected.path())
        .output()
        .unwrap();
    assert!(st.status.success());
    let names = |dir: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&top.join("share/man/man1")), names(expected.path()));

    // DIGESTS: Gentoo's layout, read by our own stage3 parser, and right.
    let digests_path = PathBuf::from(format!("{}.DIGESTS", d.tarball.display()));
    let text = std::fs::read_to_string(&digests_path).unwrap();
    let listed = build_helper::stage3::parse_digests(&text, &format!("{}.tar.gz", d.name))
        .unwrap_or_else(|e| panic!("{}: {e}\n{text}", digests_path.display()));
    let mut bytes = Vec::new();
    std::fs::File::open(&d.tarball)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(
        listed.sha512.as_deref(),
        Some(hex::encode(sha2::Sha512::digest(&bytes)).as_str())
    );
    assert_eq!(
        listed.blake2b.as_deref(),
        Some(hex::encode(blake2::Blake2b512::digest(&bytes)).as_str())
    );
}

/// `readelf --wide` output of `args` for `bin`.
fn readelf(args: &[&str], bin: &Path) -> String {
    let out = Command::new("readelf")
        .args(args)
        .arg("--wide")
        .arg(bin)
        .output()
        .expect("run readelf (binutils: scripts/install-deps.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `GLIBC_x.y` versions the binary's version-needs section asks for, as `(x, y)`.
fn glibc_versions(version_info: &str) -> Vec<(u32, u32)> {
    version_info
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut it = v.split('.').map(|n| n.parse::<u32>().ok());
            Some((it.next()??, it.next().flatten().unwrap_or(0)))
        })
        .collect()
}

#[test]
fn dist_binary_needs_only_glibc_and_libgcc_and_stays_under_the_glibc_floor() {
    if !require_tool("readelf") {
        return;
    }
    let d = dist();
    let bin = d.unpacked.join(&d.name).join("bin/build-helper");
    let dynamic = readelf(&["--dynamic"], &bin);
    let needed: Vec<&str> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    assert!(needed.contains(&"libc.so.6"), "{dynamic}");
    for lib in &needed {
        assert!(
            ALLOWED_NEEDED.contains(lib),
            "the tarball's binary needs {lib}: link it statically (scripts/dist.sh)"
        );
    }
    let versions = glibc_versions(&readelf(&["--version-info"], &bin));
    let floor = versions.iter().max().copied().expect("no GLIBC_ versions");
    assert!(
        floor <= GLIBC_FLOOR,
        "the binary now needs glibc {}.{}, above the stated floor {}.{} (docs/install.md)",
        floor.0,
        floor.1,
        GLIBC_FLOOR.0,
        GLIBC_FLOOR.1
    );
    let size = std::fs::metadata(&bin).unwrap().len();
    eprintln!(
        "dist binary: {size} bytes ({:.1} MiB), glibc floor {}.{}, NEEDED {needed:?}",
        size as f64 / (1 << 20) as f64,
        floor.0,
        floor.1
    );
}

#[test]
fn glibc_versions_reads_readelf_version_needs() {
    let sample = "  0x0010:   Name: GLIBC_2.2.5  Flags: none  Version: 5\n  \
                  0x0020:   Name: GLIBC_2.34  Flags: none  Version: 4\n  \
                  0x0030:   Name: GCC_3.0  Flags: none  Version: 3\n";
    assert_eq!(glibc_versions(sample), [(2, 2), (2, 34)]);
}

/// Removes a directory when dropped (the unpacked tarball inside the cached chroot).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn dist_tarball_runs_version_plan_and_check_in_a_clean_minbase_chroot() {
    if !require_root() {
        return;
    }
    let d = dist();
    let root = std::env::var_os("BH_MINBASE")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("bh-minbase"));
    let st = Command::new(format!("{SRC}/scripts/minbase-chroot.sh"))
        .arg(&root)
        .status()
        .expect("run scripts/minbase-chroot.sh");
    assert!(st.success(), "scripts/minbase-chroot.sh failed");
    for tool in ["rustc", "cargo", "cc", "gcc"] {
        for dir in ["usr/bin", "usr/local/bin", "bin"] {
            assert!(
                !root.join(dir).join(tool).exists(),
                "{tool} in the minbase chroot"
            );
        }
    }
    assert!(
        !root.join("usr/lib/x86_64-linux-gnu/liblzma.so").exists(),
        "liblzma development files in the chroot"
    );

    // Unpacked as a user would, with the chroot's own tar.
    let opt = format!("opt/bh-dist-{}", std::process::id());
    let _cleanup = RemoveOnDrop(root.join(&opt));
    let tree = root.join(&opt).join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::copy(&d.tarball, root.join(&opt).join("dist.tar.gz")).unwrap();
    for dir in ["configs", "starters"] {
        let st = Command::new("cp")
            .arg("-a")
            .arg(Path::new(SRC).join(dir))
            .arg(&tree)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let in_chroot = |script: &str| {
        Command::new("chroot")
            .arg(&root)
            .args(["/bin/sh", "-c", script])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("BUILD_HELPER_TREE", format!("/{opt}/tree"))
            .output()
            .unwrap()
    };
    let out = in_chroot(&format!(
        "cd /{opt} && tar -xzf dist.tar.gz && rm dist.tar.gz && ls {}/bin",
        d.name
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bh = format!("/{opt}/{}/bin/build-helper", d.name);

    let out = in_chroot(&format!("{bh} --version"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("build-helper {}\n", env!("CARGO_PKG_VERSION"))
    );

    // The bash completion loads in the chroot's bash and completes the subcommands.
    let out = in_chroot(&format!(
        "exec bash -c '. /{opt}/{}/share/bash-completion/completions/build-helper && \
         COMP_WORDS=(build-helper hi) COMP_CWORD=1 && _build__helper build-helper hi build-helper \
         && echo \"${{COMPREPLY[@]}}\"'",
        d.name
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "history\n");

    // plan needs no root: run it as nobody.
    let out = in_chroot(&format!(
        "setpriv --reuid=65534 --regid=65534 --clear-groups {bh} plan --json /{opt}/tree/starters/demo.toml"
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["targets"].as_array().unwrap().len(), 3);
    // The original's real configurations too.
    let out = in_chroot(&format!("{bh} plan /{opt}/tree/starters/fleet.toml"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let configs: Vec<String> = std::fs::read_dir(tree.join("configs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains('.') || n == "host-amd64")
        .map(|n| format!("/{opt}/tree/configs/{n}"))
        .collect();
    assert!(configs.len() >= 5, "{configs:?}");
    let out = in_chroot(&format!("{bh} check {}", configs.join(" ")));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("{} configuration(s) valid", configs.len())),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
