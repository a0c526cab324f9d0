# Copyright 2026 Gentoo Authors
# Distributed under the terms of the GNU General Public License v2

# The live ebuild: builds the newest commit; its crates are fetched by cargo at unpack time.

EAPI=8

RUST_MIN_VER="1.88.0"

inherit cargo git-r3 shell-completion

DESCRIPTION="Build customised Gentoo installations for many crossdev targets in parallel"
HOMEPAGE="https://github.com/armtux/build-helper"
EGIT_REPO_URI="https://github.com/armtux/build-helper.git"

LICENSE="GPL-2+"
# Dependent crate licenses (see the versioned ebuild)
LICENSE+=" Apache-2.0 BSD CDLA-Permissive-2.0 ISC MIT Unicode-3.0 ZLIB"
SLOT="0"
IUSE="qemu"

# liblzma: linked from the system (the portable tarball compiles it in instead).
# squashfs: mksquashfs or gensquashfs writes the history; rsync copies a history of type
# files; tmux runs the tmux front end. No distcc: `distcc-helper` runs the history's own
# distccd, chrooted in it.
DEPEND="app-arch/xz-utils"
RDEPEND="
	${DEPEND}
	app-misc/tmux
	net-misc/rsync
	|| (
		sys-fs/squashfs-tools
		sys-fs/squashfs-tools-ng
	)
	qemu? ( app-emulation/qemu )
"
BDEPEND="virtual/pkgconfig"

QA_FLAGS_IGNORED="usr/bin/${PN}"

src_unpack() {
	git-r3_src_unpack
	cargo_live_src_unpack
}

src_compile() {
	cargo_src_compile

	# Man pages and completions come from the binary's own command line definitions.
	local bin="$(cargo_target_dir)/${PN}"
	"${bin}" generate man "${T}/man" >/dev/null || die
	local shell
	for shell in bash zsh fish; do
		"${bin}" generate completion ${shell} > "${T}/${PN}.${shell}" || die
	done
}

src_install() {
	dobin "$(cargo_target_dir)/${PN}"
	doman "${T}"/man/*.1
	newbashcomp "${T}/${PN}.bash" ${PN}
	newzshcomp "${T}/${PN}.zsh" _${PN}
	newfishcomp "${T}/${PN}.fish" ${PN}.fish
	einstalldocs
}
