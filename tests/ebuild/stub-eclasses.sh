# STAND-IN for Portage and the eclasses, for tests/ebuild.rs only: enough of the ebuild
# environment to source our ebuilds in plain bash and run their src_compile and src_install
# without a Gentoo repository. Each stub does what the named function is documented to do
# (PMS for the helpers, cargo.eclass, git-r3.eclass and shell-completion.eclass for the
# rest), in the simplest way; none is copied from an eclass.
#
# Expects: EBUILD (path of the ebuild), BH_TARGET_DIR (directory of a built build-helper),
# and WORKDIR (scratch directory). Sets PN, PV, P, PF, T, D, ED like Portage does.

ebuild_file=${EBUILD##*/}
P=${ebuild_file%.ebuild}
PN=${P%-*}
PV=${P##*-}
PF=$P
T=$WORKDIR/temp
D=$WORKDIR/image
ED=$D
S=$WORKDIR/$P
mkdir -p "$T" "$D" "$S"
INHERITED=

die() { echo "die: $*" >&2; exit 1; }

# inherit: records the eclass; for cargo, turns CRATES ("name@version" words, set before
# inherit) into CARGO_CRATE_URIS, the crates.io download URLs renamed to name-version.crate.
inherit() {
	local e c
	for e in "$@"; do
		INHERITED="$INHERITED $e"
		if [ "$e" = cargo ]; then
			CARGO_CRATE_URIS=
			for c in ${CRATES-}; do
				CARGO_CRATE_URIS="$CARGO_CRATE_URIS https://crates.io/api/v1/crates/${c%@*}/${c#*@}/download -> ${c%@*}-${c#*@}.crate"
			done
		fi
	done
}

cargo_src_compile() { :; }
cargo_target_dir() { echo "$BH_TARGET_DIR"; }
cargo_live_src_unpack() { :; }
git-r3_src_unpack() { :; }

_bh_ins() { # directory file [new name]
	mkdir -p "$D$1" && cp "$2" "$D$1/${3:-${2##*/}}" || die "installing $2"
}
dobin() { local f; for f in "$@"; do _bh_ins /usr/bin "$f"; done; }
doman() {
	local f
	for f in "$@"; do
		case $f in
			*.[1-9]) _bh_ins "/usr/share/man/man${f##*.}" "$f" ;;
			*) die "doman: $f has no section suffix" ;;
		esac
	done
}
newbashcomp() { _bh_ins /usr/share/bash-completion/completions "$1" "$2"; }
newzshcomp() { _bh_ins /usr/share/zsh/site-functions "$1" "$2"; }
newfishcomp() { _bh_ins /usr/share/fish/vendor_completions.d "$1" "$2"; }
einstalldocs() {
	local f
	for f in README* ChangeLog* AUTHORS* NEWS*; do
		[ -s "$f" ] && _bh_ins "/usr/share/doc/$PF" "$f"
	done
	return 0
}
