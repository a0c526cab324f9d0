//! The primary phase (spec/recipe.md steps 1-5): host sync, host portage, host toolchain,
//! one crossdev toolchain per distinct tuple, rust cross toolchains.

use super::{lib_bits, sh_words, skeleton_commands, step, Phase, Step};

/// A distinct target tuple and the build-arch of its first target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TupleInfo {
    /// The crossdev tuple.
    pub tuple: String,
    /// The kernel `ARCH` of the first target with this tuple.
    pub build_arch: String,
    /// The libc package name of the tuple (`musl` or `glibc`).
    pub libc: String,
    /// `worlds/rust.clean` of the first target with this tuple: packages installed into the
    /// skeleton only to build the rust cross toolchain, unmerged afterwards.
    pub rust_clean: Vec<String>,
}

/// What the primary phase depends on.
#[derive(Debug, Clone)]
pub struct HostRecipe {
    /// No history was mounted.
    pub first_build: bool,
    /// Distinct tuples among the targets, in target order.
    pub tuples: Vec<TupleInfo>,
    /// The host configuration has an empty `cpuflags` file.
    pub cpuflags: bool,
    /// The host world installs rust (`dev-lang/rust` or `dev-lang/rust-bin`): rust cross
    /// toolchains are built for tuples whose rust target is missing.
    pub rust: bool,
    /// The starter sets GENTOO_MIRRORS: `host-sync` adds it to the build environment's
    /// make.conf (the host configuration's) for the run, marked with
    /// [`super::MIRRORS_MARKER`]; the supervisor removes it at `archive-history`.
    pub gentoo_mirrors: bool,
}

const TOOLCHAIN: &str = "sys-kernel/linux-headers sys-devel/binutils sys-devel/gcc virtual/libc";

const SELECT_NEWEST: &str = r#"newest() { eselect "$1" list | sed -n 's/^ *\[\([0-9]*\)\].*/\1/p' | tail -n 1; }
"#;

fn host_sync(first: bool, mirrors: bool) -> String {
    let mut s = String::new();
    if mirrors {
        s.push_str(&format!(
            "sed -i '/ {m}$/d' /etc/portage/make.conf\n\
             echo \"GENTOO_MIRRORS=\\\"$GENTOO_MIRRORS\\\" {m}\" >> /etc/portage/make.conf\n",
            m = super::MIRRORS_MARKER
        ));
    }
    s.push_str(&host_sync_body(first));
    s
}

fn host_sync_body(first: bool) -> String {
    if first {
        r#"repo=/var/db/repos/crossdev
mkdir -p "$repo/profiles" "$repo/metadata"
echo crossdev > "$repo/profiles/repo_name"
printf 'masters = gentoo\nthin-manifests = true\n' > "$repo/metadata/layout.conf"
chown -R portage:portage "$repo"
conf=/etc/portage/repos.conf/gentoo.conf
restore() { if [ -e "$conf.build-helper" ]; then mv "$conf.build-helper" "$conf"; fi; }
trap restore EXIT
restore
if [ -e "$conf" ]; then mv "$conf" "$conf.build-helper"; fi
emerge-webrsync
emerge -1kq dev-vcs/git
restore
if [ -e /var/db/repos/gentoo ] && [ ! -d /var/db/repos/gentoo/.git ]; then
  rm -rf /var/db/repos/gentoo.webrsync
  mv /var/db/repos/gentoo /var/db/repos/gentoo.webrsync
fi
emerge --sync
"#
        .into()
    } else {
        "emerge --sync || { rm -rf /var/db/repos/gentoo; emerge --sync; }\n".into()
    }
}

fn host_portage(cpuflags: bool) -> String {
    let mut s = String::from("emerge -1kq app-portage/cpuid2cpuflags\n");
    if cpuflags {
        s.push_str(
            "echo \"*/* $(cpuid2cpuflags)\" > /etc/portage/package.use/00cpu-flags-native\n",
        );
    }
    s.push_str(
        r#"if emerge -pquDN --with-bdeps=y @world 2>/dev/null | grep -q 'dev-lang/python-[0-9]'; then
  echo "build-helper: a new python is pending in @world; portage is updated with it"
else
  emerge -1ukq sys-apps/portage
fi
"#,
    );
    s
}

fn host_toolchain(r: &HostRecipe) -> String {
    let mut s = String::from(SELECT_NEWEST);
    let flag = if r.first_build { "-1kq" } else { "-1ukq" };
    s.push_str(&format!("emerge {flag} {TOOLCHAIN}\n"));
    s.push_str(
        r#"eselect gcc set "$(newest gcc)"
eselect binutils set "$(newest binutils)"
. /etc/profile
"#,
    );
    s.push_str(&format!(
        "emerge {flag} dev-lang/perl\nperl-cleaner --all\n"
    ));
    if !r.first_build {
        for t in &r.tuples {
            s.push_str(&format!(
                "newest_env=$(ls -d /usr/{t}.* 2>/dev/null | grep -v '\\.skeleton$' | sort | tail -n 1 || true)\n\
                 if [ -n \"$newest_env\" ]; then ln -sfn \"${{newest_env#/usr/}}\" /usr/{t}; fi\n",
                t = t.tuple
            ));
        }
    }
    // Rust cross builds are switched off while @world is rebuilt (spec, host-toolchain): all
    // of them on a first build; on an update only those of tuples whose rust target is still
    // missing, so a rust rebuilt by the update keeps the cross targets it already has.
    s.push_str(
        r#"rust_env=/etc/portage/env/dev-lang/rust
restore() { if [ -e "$rust_env.build-helper" ]; then mv "$rust_env.build-helper" "$rust_env"; fi; }
trap restore EXIT
restore
if [ -e "$rust_env" ]; then mv "$rust_env" "$rust_env.build-helper"; fi
"#,
    );
    if !r.first_build {
        s.push_str(
            "if [ -e \"$rust_env.build-helper\" ]; then
  cp \"$rust_env.build-helper\" \"$rust_env\"
",
        );
        for t in &r.tuples {
            s.push_str(&format!(
                "  if {}; then sed -i -e '/:{tuple}:/d' -e '/:{tuple}$/d' \"$rust_env\"; fi
",
                rust_target_missing(&t.tuple),
                tuple = t.tuple
            ));
        }
        s.push_str(
            "fi
",
        );
    }
    if r.first_build {
        s.push_str("emerge -ekq --with-bdeps=y @world\n");
    } else {
        s.push_str("emerge -uDNkq --with-bdeps=y @world\n");
    }
    s.push_str("restore\n");
    if r.rust && !r.first_build {
        s.push_str("eselect rust update\n");
    }
    s
}

fn rust_target_missing(tuple: &str) -> String {
    format!("! ls -d /usr/lib/rust/*/lib/rustlib/{tuple} /usr/lib/rustlib/{tuple} >/dev/null 2>&1")
}

fn crossdev(r: &HostRecipe) -> String {
    let mut s = String::from(SELECT_NEWEST);
    for t in &r.tuples {
        let tuple = &t.tuple;
        let skel = format!("/usr/{tuple}.skeleton");
        s.push_str(&format!(
            "if [ ! -d {skel} ]; then\n  rm -rf /usr/{tuple}\n"
        ));
        for line in skeleton_commands(&format!("/usr/{tuple}"), lib_bits(&t.build_arch)).lines() {
            s.push_str(&format!("  {line}\n"));
        }
        s.push_str(&format!(
            "  crossdev -P -k -t {tuple}\n  \
             if ! grep -qw openmp /var/db/pkg/cross-{tuple}/gcc-*/USE 2>/dev/null; then\n    \
             USE=openmp emerge -1kq cross-{tuple}/gcc\n  fi\n  \
             mv /usr/{tuple} {skel}\nfi\n\
             if [ ! -L /usr/{tuple} ]; then rm -rf /usr/{tuple}; fi\n\
             ln -sfn {tuple}.skeleton /usr/{tuple}\n\
             for llvm in /usr/lib/llvm/*/bin; do\n  \
             [ -x \"$llvm/clang\" ] || continue\n  \
             ln -sf \"$llvm/clang\" \"/usr/bin/{tuple}-clang\"\n  \
             ln -sf \"$llvm/clang++\" \"/usr/bin/{tuple}-clang++\"\n\
             done\n\
             eselect gcc set \"$(eselect gcc list | grep -F {tuple} | sed -n 's/^ *\\[\\([0-9]*\\)\\].*/\\1/p' | tail -n 1)\" || true\n"
        ));
        if r.rust {
            s.push_str(&format!(
                "if {} ; then echo \"build-helper: rust target {tuple} missing; rust-cross builds it\"; else announce {tuple}; fi\n",
                rust_target_missing(tuple)
            ));
        } else {
            s.push_str(&format!("announce {tuple}\n"));
        }
    }
    s
}

fn rust_cross(r: &HostRecipe) -> String {
    let mut s = String::new();
    for t in &r.tuples {
        let tuple = &t.tuple;
        s.push_str(&format!(
            r#"if {missing}; then
  S=/usr/{tuple}.skeleton
  {tuple}-emerge --root="$S" --sysroot="$S" -1kq virtual/libc sys-devel/gcc dev-libs/openssl
  emerge -1q dev-lang/rust
{clean}  {tuple}-emerge --root="$S" --sysroot="$S" -q --depclean
  emerge -1kq cross-{tuple}/gcc cross-{tuple}/{libc}
fi
announce {tuple}
"#,
            missing = rust_target_missing(tuple),
            libc = t.libc,
            clean = if t.rust_clean.is_empty() {
                String::new()
            } else {
                format!(
                    "  {tuple}-emerge --root=\"$S\" --sysroot=\"$S\" -Cq {}\n",
                    sh_words(&t.rust_clean)
                )
            },
        ));
    }
    s
}

/// The primary phase's steps. `rust-cross` is present only when the host world installs rust.
pub fn primary_steps(r: &HostRecipe) -> Vec<Step> {
    let mut steps = vec![
        step(
            "host-sync",
            Phase::Primary,
            host_sync(r.first_build, r.gentoo_mirrors),
        ),
        step("host-portage", Phase::Primary, host_portage(r.cpuflags)),
        step("host-toolchain", Phase::Primary, host_toolchain(r)),
    ];
    let mut cross = step("crossdev", Phase::Primary, crossdev(r));
    cross.announces = r.tuples.iter().map(|t| t.tuple.clone()).collect();
    steps.push(cross);
    if r.rust {
        let mut rc = step("rust-cross", Phase::Primary, rust_cross(r));
        rc.announces = r.tuples.iter().map(|t| t.tuple.clone()).collect();
        steps.push(rc);
    }
    steps
}
