//! The primary phase (docs/recipe.md, "The primary phase"): host sync, host portage, host toolchain,
//! one crossdev toolchain per distinct tuple, rust cross toolchains.

use super::{lib_bits, sh_dq, sh_quote, sh_sq, sh_words, skeleton_commands, step, Phase, Step};

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
    /// The tuple's rust target from the host's `env/dev-lang/rust` (`RUST_CROSS_TARGETS`),
    /// e.g. `x86_64-crossdev-linux-musl`; `None`: the tuple gets no rust cross toolchain and
    /// never triggers a rust rebuild (the original's m68k target).
    pub rust_target: Option<String>,
    /// The `target-portage` directory of the first target with this tuple (a path in the
    /// build environment, where the configurations are bound at their tree path): the
    /// configuration the tuple's skeleton is pointed at while rust's dependencies are
    /// installed into it, as the original.
    pub target_portage: String,
    /// `PORTAGE_TMPDIR` of that target's make.conf (see [`crate::config::ROOT_PREFIX`]).
    pub portage_tmpdir: Option<String>,
}

/// What the primary phase depends on.
#[derive(Debug, Clone)]
pub struct HostRecipe {
    /// No history was mounted.
    pub first_build: bool,
    /// Distinct tuples among the targets, in target order.
    pub tuples: Vec<TupleInfo>,
    /// The host configuration has an empty `cpuflags` file: every primary step exports the
    /// build machine's CPU flags ([`super::CPU_FLAGS_EXPORT`]) instead of writing them into
    /// the host configuration.
    pub cpuflags: bool,
    /// The host world installs rust (`dev-lang/rust` or `dev-lang/rust-bin`): rust cross
    /// toolchains are built for tuples whose rust target is missing.
    pub rust: bool,
    /// Every `PORTAGE_TMPDIR` of the host's and the targets' make.conf: created at the start
    /// of each primary step (Portage refuses to merge without it; a tmpfs starts empty),
    /// those below `${ROOT}` for ROOT `/`; a target's below `${ROOT}` is also created in
    /// its tuple's skeleton before rust's dependencies are installed there
    /// ([`TupleInfo::portage_tmpdir`]).
    pub portage_tmpdirs: Vec<String>,
    /// The starter sets GENTOO_MIRRORS: `host-sync` adds it to the build environment's
    /// make.conf (the host configuration's) for the run, marked with
    /// [`super::MIRRORS_MARKER`]; the line lands in the run's own view of `configs/`
    /// (`Layout::configs_view`), never in the user's file.
    pub gentoo_mirrors: bool,
}

/// The host toolchain; the libc is added by CHOST (`host_libc`), since `virtual/libc`
/// alone would not rebuild it.
const TOOLCHAIN: &str = "sys-kernel/linux-headers sys-devel/binutils sys-devel/gcc";

/// The host's CHOST, its libc package, and its newest native gcc and binutils versions
/// (`/usr/lib/gcc/<CHOST>/<ver>`, `/usr/<CHOST>/binutils-bin/<ver>`, as gcc-config and
/// binutils-config lay them out).
const HOST_FACTS: &str = r#"chost=$(portageq envvar CHOST)
case "$chost" in *-musl*) host_libc=sys-libs/musl ;; *) host_libc=sys-libs/glibc ;; esac
newest_in() { ls "$1" 2>/dev/null | grep -v '^lib' | sort -V | tail -n 1; }
"#;

/// VIDEO_CARDS for the host's own emerges: the starter's VIDEO_CARDS_NATIVE, as the
/// original exports it for the whole primary phase (the build machine is the native one).
const HOST_VIDEO_CARDS: &str = r#"if [ -n "${VIDEO_CARDS_NATIVE:-}" ]; then export VIDEO_CARDS="$VIDEO_CARDS_NATIVE"; fi
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
    let mut s = String::from(HOST_VIDEO_CARDS);
    s.push_str("emerge -1kq app-portage/cpuid2cpuflags\n");
    if cpuflags {
        // Again, now that it is installed (the step's prelude ran before).
        s.push_str(super::CPU_FLAGS_EXPORT);
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
    let mut s = String::from(HOST_VIDEO_CARDS);
    s.push_str(HOST_FACTS);
    let flag = if r.first_build { "-1kq" } else { "-1ukq" };
    if r.first_build {
        // A saved host world may list crossdev's packages; they cannot be built before
        // `crossdev` creates them.
        s.push_str("sed -i '/^cross-/d' /var/lib/portage/world\n");
    }
    s.push_str(&format!("emerge {flag} {TOOLCHAIN} \"$host_libc\"\n"));
    s.push_str(
        r#"eselect gcc set "$chost-$(newest_in "/usr/lib/gcc/$chost")"
eselect binutils set "$chost-$(newest_in "/usr/$chost/binutils-bin")"
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
                t = sh_quote(&t.tuple)
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
            let Some(missing) = rust_target_missing(t) else {
                continue;
            };
            s.push_str(&format!(
                "  if {missing}; then sed -i -e '/:{tuple}\"/d' -e '/:{tuple}$/d' \"$rust_env\"; fi
",
                tuple = sh_sq(&t.tuple)
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

/// A test that is true when the tuple's rust target is not built yet (rust is slotted:
/// `/usr/lib/rust/<ver>/lib/rustlib/<target>`; rust-bin: `/usr/lib/rustlib/<target>`);
/// `None` when the tuple has no rust target.
fn rust_target_missing(t: &TupleInfo) -> Option<String> {
    t.rust_target.as_ref().map(|rt| {
        let rt = sh_quote(rt);
        format!("! ls -d /usr/lib/rust/*/lib/rustlib/{rt} /usr/lib/rustlib/{rt} >/dev/null 2>&1")
    })
}

/// The clang names the original links for a cross tuple, each to the host's own clang
/// (`<CHOST>-clang`), plus `llvm-config`; the versioned ones get `-<llvm slot>` appended.
const CLANG_LINKS: [&str; 4] = ["clang", "clang++", "clang-cl", "clang-cpp"];

fn crossdev(r: &HostRecipe) -> String {
    let mut s = String::from(HOST_VIDEO_CARDS);
    s.push_str(HOST_FACTS);
    s.push_str(
        r#"llvm=$(newest_in /usr/lib/llvm)
if [ -e /etc/clang ]; then : > /etc/clang/gentoo-gcc-install.cfg; fi
"#,
    );
    for t in &r.tuples {
        // `tuple` where the shell reads a word, `dq` inside double quotes.
        let (tuple, dq) = (&sh_quote(&t.tuple), &sh_dq(&t.tuple));
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
             ln -sfn {tuple}.skeleton /usr/{tuple}\n"
        ));
        s.push_str(
            "if [ -n \"$llvm\" ] && [ -e \"/usr/lib/llvm/$llvm/bin/$chost-clang\" ]; then\n",
        );
        s.push_str("  b=\"/usr/lib/llvm/$llvm/bin\"\n");
        for name in CLANG_LINKS {
            s.push_str(&format!(
                "  ln -sfn \"$chost-clang\" \"$b/{dq}-{name}\"\n  \
                 ln -sfn \"$chost-clang\" \"$b/{dq}-{name}-$llvm\"\n"
            ));
        }
        s.push_str(&format!(
            "  ln -sfn \"$chost-llvm-config\" \"$b/{dq}-llvm-config\"\nfi\n"
        ));
        s.push_str(&format!(
            "eselect gcc set \"{dq}-$(newest_in /usr/lib/gcc/{tuple})\"\n\
             eselect binutils set \"{dq}-$(newest_in \"/usr/$chost/{dq}/binutils-bin\")\"\n"
        ));
        match rust_target_missing(t).filter(|_| r.rust) {
            Some(missing) => s.push_str(&format!(
                "if {missing} ; then echo \"build-helper: rust target {rt} missing; rust-cross builds it\"; else announce {tuple}; fi\n",
                rt = sh_dq(t.rust_target.as_deref().unwrap_or_default())
            )),
            None => s.push_str(&format!("announce {tuple}\n")),
        }
    }
    s
}

/// `rust-cross`, in the original's order: first every tuple whose rust target is missing
/// gets its skeleton pointed at its first target's `target-portage` (and, for the primary
/// target's tuple, its binary packages) and gcc, libc and openssl installed into it; then
/// one rust build makes the std of every missing target at once; then each skeleton drops
/// `worlds/rust.clean` and what only rust needed, and its cross gcc and libc are reinstalled.
/// Building rust per tuple would build std for every tuple before the other skeletons had
/// their libraries (dev-lang/rust builds all of RUST_CROSS_TARGETS in one go).
fn rust_cross(r: &HostRecipe) -> String {
    let mut s = String::from("unset VIDEO_CARDS\nrebuild=no\n");
    let with_rust: Vec<(usize, &TupleInfo, String)> = r
        .tuples
        .iter()
        .enumerate()
        .filter_map(|(i, t)| rust_target_missing(t).map(|m| (i, t, m)))
        .collect();
    for (i, t, missing) in &with_rust {
        let tuple = &sh_quote(&t.tuple);
        let packages = if *i == 0 {
            "  ln -sfn \"$BUILD_PKGS\" \"$S/packages\"\n"
        } else {
            ""
        };
        s.push_str(&format!(
            r#"missing_{i}=no
if {missing}; then
  missing_{i}=yes
  rebuild=yes
  S=/usr/{tuple}.skeleton
  if [ -e "$S/etc/portage" ] && [ ! -L "$S/etc/portage" ]; then rm -rf "$S/etc/portage"; fi
  mkdir -p "$S/etc"
  ln -sfn {portage} "$S/etc/portage"
  if [ -e "$S/packages" ] && [ ! -L "$S/packages" ]; then rm -rf "$S/packages"; fi
{packages}{tmpdir}  {tuple}-emerge --root="$S" --sysroot="$S" -1kq virtual/libc sys-devel/gcc dev-libs/openssl
fi
"#,
            portage = sh_quote(&t.target_portage),
            tmpdir = match &t.portage_tmpdir {
                Some(d) => format!("  mkdir -p {}\n", super::tmpdir_word(d, "\"$S\"/")),
                None => String::new(),
            },
        ));
    }
    s.push_str("if [ \"$rebuild\" = yes ]; then emerge -1q dev-lang/rust; fi\n");
    for (i, t, _) in &with_rust {
        let tuple = &sh_quote(&t.tuple);
        s.push_str(&format!(
            r#"if [ "$missing_{i}" = yes ]; then
  S=/usr/{tuple}.skeleton
{clean}  {tuple}-emerge --root="$S" --sysroot="$S" -q --depclean
  emerge -1kq cross-{tuple}/gcc cross-{tuple}/{libc}
fi
announce {tuple}
"#,
            libc = sh_quote(&t.libc),
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

/// The primary phase's steps. `rust-cross` is present only when the host world installs rust
/// and some tuple has a rust target. Each step first creates the `PORTAGE_TMPDIR`s.
pub fn primary_steps(r: &HostRecipe) -> Vec<Step> {
    let words: Vec<String> = r
        .portage_tmpdirs
        .iter()
        .map(|d| super::tmpdir_word(d, "/"))
        .collect();
    let mut prelude = super::tmpdir_commands(&words);
    if r.cpuflags {
        // The host's CPU flags for every primary step from the moment cpuid2cpuflags is
        // installed (host-portage installs it).
        prelude.push_str(super::CPU_FLAGS_EXPORT);
    }
    let mk = |name: &str, body: String| step(name, Phase::Primary, format!("{prelude}{body}"));
    let mut steps = vec![
        mk("host-sync", host_sync(r.first_build, r.gentoo_mirrors)),
        mk("host-portage", host_portage(r.cpuflags)),
        mk("host-toolchain", host_toolchain(r)),
    ];
    let mut cross = mk("crossdev", crossdev(r));
    cross.announces = r.tuples.iter().map(|t| t.tuple.clone()).collect();
    steps.push(cross);
    let rust_tuples: Vec<String> = r
        .tuples
        .iter()
        .filter(|t| t.rust_target.is_some())
        .map(|t| t.tuple.clone())
        .collect();
    if r.rust && !rust_tuples.is_empty() {
        let mut rc = mk("rust-cross", rust_cross(r));
        rc.announces = rust_tuples;
        steps.push(rc);
    }
    steps
}
