//! The Gentoo crossdev recipe (docs/recipe.md): a configuration becomes an ordered list of
//! named [`Step`]s, each a POSIX shell script run inside a chroot.
//!
//! Pure: nothing here touches the system, so every generated command is golden-tested. The
//! scripts read the run's exported variables (`$CROSSDEV_TARGET`, `$BUILD_CONF`, ...) so they
//! stay readable; configuration branches are decided here, at plan time, and show in the plan.
//! Step names are part of the interface (CLI, checkpoints, logs): see [`PRIMARY_STEPS`] and
//! [`TARGET_STEPS`].

#[cfg(test)]
mod branch_tests;
mod host;
mod images;
mod quote;
mod target;

use serde::{Deserialize, Serialize};

pub use host::{primary_steps, HostRecipe, TupleInfo};
pub use quote::{sh_dq, sh_quote, sh_sq, sh_words};
pub use target::{target_steps, TargetRecipe, MIRRORS_MARKER};

/// Steps of the primary phase, in order (run once, in the primary target's chroot).
pub const PRIMARY_STEPS: [&str; 5] = [
    "host-sync",
    "host-portage",
    "host-toolchain",
    "crossdev",
    "rust-cross",
];

/// Steps of the target phase, in order (one worker per target).
pub const TARGET_STEPS: [&str; 13] = [
    "target-env",
    "target-sync",
    "target-libc",
    "kernel-sources",
    "pam-bootstrap",
    "target-world",
    "target-maintenance",
    "final-root",
    "world-images",
    "initramfs",
    "kernel",
    "images",
    "collect",
];

/// Which phase a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Primary phase: shared toolchains, in the primary chroot.
    Primary,
    /// Target phase: one target's installation.
    Target,
}

/// One step: a named shell script run chrooted with `/bin/sh -c`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The step name (from [`PRIMARY_STEPS`] or [`TARGET_STEPS`]).
    pub name: String,
    /// Its phase.
    pub phase: Phase,
    /// The whole script, prelude included.
    pub script: String,
    /// True when the step syncs a repository: the engine lets one such step run at a time.
    #[serde(default)]
    pub sync_lock: bool,
    /// Tuples whose toolchain this step may announce ready (it writes
    /// `toolchain-ready <tuple>` lines to file descriptor 3).
    #[serde(default)]
    pub announces: Vec<String>,
}

/// What every step script starts with: a login-like environment, then strict mode and a
/// trace of each command, plus the helpers the scripts share.
pub const PRELUDE: &str = r#". /etc/profile
set -eux
R="/usr/$CROSSDEV_TARGET.$BUILD_NAME"
E() { "$CROSSDEV_TARGET-emerge" --root="$R" --sysroot="$R" "$@"; }
announce() { if { true >&3; } 2>/dev/null; then echo "toolchain-ready $1" >&3; fi; }
"#;

/// Exports the build machine's CPU flags (`cpuid2cpuflags` prints e.g.
/// `CPU_FLAGS_X86: aes avx ...`) as that USE_EXPAND variable, when the tool is installed.
/// Portage reads USE_EXPAND variables from the environment, so the flags reach every emerge
/// of the step without a file written into the user's configuration (the original wrote
/// `package.use/00cpu-flags-native` into it).
pub const CPU_FLAGS_EXPORT: &str = r#"if command -v cpuid2cpuflags >/dev/null 2>&1; then
  cpu_flags=$(cpuid2cpuflags)
  case "$cpu_flags" in CPU_FLAGS_*:*) export "${cpu_flags%%:*}=${cpu_flags#*: }" ;; esac
fi
"#;

/// `mkdir -p` of each `PORTAGE_TMPDIR` (docs/recipe.md, "Mounts", and the `PORTAGE_TMPDIR`
/// row of "The original's step → this recipe"),
/// run at the start of every step that may emerge; empty when there are none. Each word is
/// a [`tmpdir_word`].
pub fn tmpdir_commands(words: &[String]) -> String {
    if words.is_empty() {
        String::new()
    } else {
        format!("mkdir -p {}\n", words.join(" "))
    }
}

/// A `PORTAGE_TMPDIR` as one shell word for the emerges whose ROOT is `root` (shell text
/// ending in `/`, e.g. `/` or `"$R"/`): a value below [`crate::config::ROOT_PREFIX`] is
/// expanded as Portage expands it in make.conf, any other is quoted as it is.
pub fn tmpdir_word(dir: &str, root: &str) -> String {
    match dir.strip_prefix(crate::config::ROOT_PREFIX) {
        Some("") => root.to_string(),
        Some(rest) => format!("{root}{}", sh_quote(rest)),
        None => sh_quote(dir),
    }
}

fn step(name: &str, phase: Phase, body: String) -> Step {
    Step {
        name: name.into(),
        phase,
        script: format!("{PRELUDE}{body}"),
        sync_lock: false,
        announces: Vec::new(),
    }
}

/// The merged-usr directory skeleton in directory `$1` (usr/lib, usr/bin, and the lib, bin,
/// sbin links); `bits` is 64 or 32 and names the extra libNN links (target-config.md,
/// build-arch).
pub fn skeleton_commands(dir: &str, bits: u32) -> String {
    format!(
        r#"mkdir -p {dir}/usr/lib {dir}/usr/bin
[ -e {dir}/lib ] || ln -s usr/lib {dir}/lib
[ -e {dir}/lib{bits} ] || ln -s usr/lib {dir}/lib{bits}
[ -e {dir}/usr/lib{bits} ] || ln -s lib {dir}/usr/lib{bits}
[ -e {dir}/bin ] || ln -s usr/bin {dir}/bin
[ -e {dir}/sbin ] || ln -s usr/bin {dir}/sbin
[ -e {dir}/usr/sbin ] || ln -s bin {dir}/usr/sbin
"#
    )
}

/// 64 when the build-arch names a 64-bit architecture (contains `64`), else 32.
pub fn lib_bits(build_arch: &str) -> u32 {
    if build_arch.contains("64") {
        64
    } else {
        32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lib_bits_follow_build_arch() {
        assert_eq!(lib_bits("x86_64"), 64);
        assert_eq!(lib_bits("arm64"), 64);
        assert_eq!(lib_bits("arm"), 32);
        assert_eq!(lib_bits("m68k"), 32);
    }
}
