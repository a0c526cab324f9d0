# STAND-IN for ::gentoo sys-kernel/gentoo-sources in the build-helper real-Portage test: as
# kernel-2.eclass installs the sources into /usr/src/linux-${KV} (for build-helper to
# configure and build with its own linux.config), this installs a tree whose Makefile
# (files/Makefile) answers the kernel targets the recipe runs with the stage3's real GNU
# make. It builds no kernel.
EAPI=8
DESCRIPTION="build-helper test package sys-kernel/gentoo-sources (STAND-IN)"
HOMEPAGE="https://example.invalid"
S="${WORKDIR}"
LICENSE="MIT"
SLOT="${PV}"
KEYWORDS="amd64"
IUSE=""

src_install() {
	local dir="/usr/src/linux-${PV}.0-gentoo"
	mkdir -p "${ED}${dir}" || die
	sed "s/@KV@/${PV}.0-gentoo/" "${FILESDIR}/Makefile" > "${ED}${dir}/Makefile" || die
}
