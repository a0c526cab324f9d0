//! Facts the recipe needs from a configuration's Portage files and kernel configuration:
//! `PORTAGE_TMPDIR` of make.conf, the files that carry an `INSTALL_MASK` line, the rust cross
//! targets of the host's `env/dev-lang/rust`, and the squashfs compressors a `linux.config`
//! enables.
//!
//! Only plain assignments are read (`NAME=value`, `NAME="value"`, optionally after `export`),
//! as the original's configurations write them; a value that uses shell expansion (`${ROOT}`)
//! cannot be known before the build and is reported.

use std::fs;
use std::path::Path;

use super::files::{self, Kind};
use super::Report;
use crate::saferoot;

/// The squashfs compressors, as gensquashfs names them, with the kernel option that lets
/// the kernel read each (`fs/squashfs/Kconfig`). In order of preference when the starter
/// names none: xz first, the original's choice (gensquashfs' default), then zstd.
pub const KERNEL_COMPRESSORS: [(&str, &str); 5] = [
    ("xz", "CONFIG_SQUASHFS_XZ"),
    ("zstd", "CONFIG_SQUASHFS_ZSTD"),
    ("gzip", "CONFIG_SQUASHFS_ZLIB"),
    ("lzo", "CONFIG_SQUASHFS_LZO"),
    ("lz4", "CONFIG_SQUASHFS_LZ4"),
];

/// The files of a make.conf (a file, or a directory of files read in name order as Portage
/// does); missing = none. A FIFO, device node or socket (also one inside a make.conf
/// directory) is listed too, so that reading it reports it ([`files::read_text`] refuses it
/// without blocking): Portage would read it, `check` must not accept it.
fn make_conf_files(report: &mut Report, make_conf: &Path) -> Vec<std::path::PathBuf> {
    match files::kind(make_conf) {
        Ok(Kind::File | Kind::Other) => vec![make_conf.to_path_buf()],
        Ok(Kind::Dir) => files::names(report, make_conf, |k| matches!(k, Kind::File | Kind::Other))
            .into_iter()
            .map(|n| make_conf.join(n))
            .collect(),
        _ => Vec::new(),
    }
}

/// The prefix of a `PORTAGE_TMPDIR` relative to the emerge's ROOT, as the original's archived
/// configurations write it (`PORTAGE_TMPDIR="${ROOT}tmp/"`): Portage expands `${ROOT}` in
/// make.conf itself (portage/package/ebuild/config.py puts ROOT, with its trailing `/`, in
/// the expansion map of make.conf). [`portage_tmpdir`] keeps it in this spelling; the recipe
/// expands it for the ROOT of the emerges that read the file.
pub const ROOT_PREFIX: &str = "${ROOT}";

/// `PORTAGE_TMPDIR` set in `make_conf` (the last plain assignment wins, as in Portage): an
/// absolute path of plain characters, or one that starts with `${ROOT}` (or `$ROOT`, kept as
/// [`ROOT_PREFIX`]) followed by plain characters, which the recipe creates before the first
/// emerge. A trailing `/` is dropped. Any other shell expansion or odd character is an error
/// naming its line.
pub(crate) fn portage_tmpdir(report: &mut Report, root: &Path, make_conf: &Path) -> Option<String> {
    let mut found = None;
    for file in make_conf_files(report, make_conf) {
        let Some(text) = files::read_text(report, root, &file) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
            let Some(value) = line.strip_prefix("PORTAGE_TMPDIR=") else {
                continue;
            };
            let value = unquote(value);
            let (prefix, rest) = match ["${ROOT}", "$ROOT"]
                .into_iter()
                .find_map(|p| value.strip_prefix(p))
            {
                Some(rest) => (ROOT_PREFIX, rest.trim_start_matches('/')),
                None => ("", value),
            };
            let plain_chars = rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._+-@".contains(&b));
            if plain_chars && !prefix.is_empty() {
                found = Some(format!("{prefix}{}", rest.trim_end_matches('/')));
            } else if plain_chars && value.starts_with('/') {
                found = Some(value.trim_end_matches('/').to_owned()).filter(|v| !v.is_empty());
                if found.is_none() {
                    found = Some("/".into());
                }
            } else {
                report.error(
                    &file,
                    Some(i + 1),
                    format!(
                        "PORTAGE_TMPDIR={value:?} cannot be created before the build: write a \
                         plain absolute path such as /var/tmp/portage/<name>, or one below \
                         ${{ROOT}} such as ${{ROOT}}tmp/"
                    ),
                );
            }
        }
    }
    found
}

fn unquote(value: &str) -> &str {
    let value = value.trim();
    let value = value.split(" #").next().unwrap_or(value).trim();
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}

/// The files below `portage_dir` (relative paths, sorted) with an `INSTALL_MASK=` line,
/// commented or not: the original switches INSTALL_MASK on and off in each of them
/// (make.conf and `env/sys-devel/gcc` in its configurations). Links are not followed
/// (make.profile points into the build environment).
pub(crate) fn install_mask_files(report: &mut Report, portage_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(report, portage_dir, portage_dir, &mut out);
    out.sort();
    out
}

fn walk(report: &mut Report, root: &Path, dir: &Path, out: &mut Vec<String>) {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            report.error(dir, None, format!("cannot read the directory: {e}"));
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(report, root, &path, out);
        } else if meta.is_file() {
            // Binary, unreadable or oversized files cannot hold the line; skip them quietly.
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let Ok(text) = saferoot::Root::open(root).and_then(|r| {
                r.read_to_string(rel, saferoot::Resolve::NoSymlinks, saferoot::CONFIG_LIMIT)
            }) else {
                continue;
            };
            let has = text.lines().any(|l| {
                l.trim_start()
                    .trim_start_matches('#')
                    .starts_with("INSTALL_MASK=")
            });
            if has {
                if let Ok(rel) = path.strip_prefix(root) {
                    out.push(rel.display().to_string());
                }
            }
        }
    }
}

/// The rust cross targets of `env/dev-lang/rust` (the host configuration's
/// `target-portage/env/dev-lang/rust`): `RUST_CROSS_TARGETS=( "LLVM:rust-target:CHOST" ... )`
/// as Gentoo's rust ebuild reads it. Returns `(tuple, rust target)` pairs in file order; the
/// rust target may be a custom one (`x86_64-crossdev-linux-musl`).
pub(crate) fn rust_cross_targets(
    report: &mut Report,
    root: &Path,
    env_rust: &Path,
) -> Vec<(String, String)> {
    if !files::is_file(env_rust) {
        return Vec::new();
    }
    let Some(text) = files::read_text(report, root, env_rust) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        for word in line.split_whitespace() {
            let word = word
                .trim_start_matches("RUST_CROSS_TARGETS=")
                .trim_matches(['(', ')']);
            let word = unquote(word);
            let parts: Vec<&str> = word.split(':').collect();
            if let [_llvm, rust_target, tuple] = parts.as_slice() {
                let ok = |s: &str| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                };
                if ok(rust_target) && ok(tuple) {
                    out.push(((*tuple).to_owned(), (*rust_target).to_owned()));
                } else {
                    report.error(
                        env_rust,
                        Some(i + 1),
                        format!(
                            "`{word}` is not `LLVM:rust-target:tuple` with plain names; fix the \
                             RUST_CROSS_TARGETS entry"
                        ),
                    );
                }
            }
        }
    }
    out
}

/// The squashfs compressors a kernel `.config` enables (`=y` or `=m`), in
/// [`KERNEL_COMPRESSORS`] order; `None` when squashfs itself is not enabled. An option the
/// file does not mention takes its Kconfig default, as `make olddefconfig` (which the recipe
/// runs) gives it: `CONFIG_SQUASHFS_ZLIB` defaults to y, the others to n.
pub(crate) fn kernel_squashfs_compressors(text: &str) -> Option<Vec<String>> {
    let setting = |option: &str| {
        text.lines().map(str::trim).find_map(|l| {
            if let Some(rest) = l.strip_prefix(option) {
                if rest.starts_with('=') {
                    return Some(rest == "=y" || rest == "=m");
                }
            }
            let unset = l.strip_prefix("# ")?.strip_prefix(option)?;
            (unset == " is not set").then_some(false)
        })
    };
    if setting("CONFIG_SQUASHFS") != Some(true) {
        return None;
    }
    let enabled = |option: &str| setting(option).unwrap_or(option == "CONFIG_SQUASHFS_ZLIB");
    Some(
        KERNEL_COMPRESSORS
            .iter()
            .filter(|(_, option)| enabled(option))
            .map(|(name, _)| (*name).to_owned())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixture::write;

    #[test]
    fn portage_tmpdir_takes_the_last_plain_assignment() {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("make.conf");
        // The original's zen2-tb-stack make.conf, lines 34-35.
        write(
            &conf,
            "#PORTAGE_TMPDIR=${ROOT}tmp/\nPORTAGE_TMPDIR=/var/tmp/portage/zen2\n",
        );
        let mut r = Report::default();
        assert_eq!(
            portage_tmpdir(&mut r, tmp.path(), &conf).as_deref(),
            Some("/var/tmp/portage/zen2")
        );
        assert!(r.errors.is_empty());
        write(&conf, "PORTAGE_TMPDIR=\"$(mktemp)\"\n");
        assert_eq!(portage_tmpdir(&mut r, tmp.path(), &conf), None);
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].line, Some(1));
    }

    #[test]
    fn portage_tmpdir_below_root_is_accepted_as_portage_expands_it() {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("make.conf");
        let mut r = Report::default();
        // The original's archived configurations.
        for line in [
            "PORTAGE_TMPDIR=\"${ROOT}tmp/\"\n",
            "PORTAGE_TMPDIR=${ROOT}tmp\n",
            "PORTAGE_TMPDIR=\"$ROOT/tmp/\"\n",
        ] {
            write(&conf, line);
            assert_eq!(
                portage_tmpdir(&mut r, tmp.path(), &conf).as_deref(),
                Some("${ROOT}tmp"),
                "{line}"
            );
        }
        write(&conf, "PORTAGE_TMPDIR=\"${ROOT}$(id)\"\n");
        assert_eq!(portage_tmpdir(&mut r, tmp.path(), &conf), None);
        assert_eq!(r.errors.len(), 1);
    }

    #[test]
    fn install_mask_files_finds_commented_lines_in_any_file() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path();
        write(
            &p.join("make.conf"),
            "A=1\n#INSTALL_MASK=\"/usr/include\"\n",
        );
        write(
            &p.join("env/sys-devel/gcc"),
            "#INSTALL_MASK=\"/usr/libexec\"\n",
        );
        write(&p.join("package.use/x"), "a/b -c\n");
        let mut r = Report::default();
        assert_eq!(
            install_mask_files(&mut r, p),
            ["env/sys-devel/gcc", "make.conf"]
        );
    }

    #[test]
    fn rust_cross_targets_reads_the_array_with_custom_targets() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("rust");
        // The original's configs/host-amd64/target-portage/env/dev-lang/rust.
        write(
            &f,
            "RUST_CROSS_TARGETS=(\n\t\"X86:x86_64-crossdev-linux-musl:x86_64-unknown-linux-musl\"\n\
             \t\"X86:i686-unknown-linux-gnu:i686-unknown-linux-gnu\"\n)\n",
        );
        let mut r = Report::default();
        assert_eq!(
            rust_cross_targets(&mut r, tmp.path(), &f),
            [
                (
                    "x86_64-unknown-linux-musl".to_owned(),
                    "x86_64-crossdev-linux-musl".to_owned()
                ),
                (
                    "i686-unknown-linux-gnu".to_owned(),
                    "i686-unknown-linux-gnu".to_owned()
                )
            ]
        );
        assert!(r.errors.is_empty());
    }

    #[test]
    fn kernel_compressors_follow_the_config() {
        // The original's m68k linux.config: squashfs built in, only XZ.
        let m68k = "CONFIG_SQUASHFS=y\n# CONFIG_SQUASHFS_ZLIB is not set\nCONFIG_SQUASHFS_XZ=y\n\
                    # CONFIG_SQUASHFS_ZSTD is not set\n";
        assert_eq!(kernel_squashfs_compressors(m68k), Some(vec!["xz".into()]));
        let zen2 = "CONFIG_SQUASHFS=m\nCONFIG_SQUASHFS_ZLIB=y\nCONFIG_SQUASHFS_LZ4=y\n\
                    CONFIG_SQUASHFS_XZ=y\nCONFIG_SQUASHFS_ZSTD=y\n";
        assert_eq!(
            kernel_squashfs_compressors(zen2),
            Some(vec![
                "xz".into(),
                "zstd".into(),
                "gzip".into(),
                "lz4".into()
            ])
        );
        assert_eq!(
            kernel_squashfs_compressors("# CONFIG_SQUASHFS is not set\n"),
            None
        );
        // Not mentioned: the Kconfig default (zlib on).
        assert_eq!(
            kernel_squashfs_compressors("CONFIG_SQUASHFS=y\n"),
            Some(vec!["gzip".into()])
        );
    }
}
