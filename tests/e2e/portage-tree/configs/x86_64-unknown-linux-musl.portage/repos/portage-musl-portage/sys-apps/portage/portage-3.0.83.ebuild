# STAND-IN for sys-apps/portage in the build-helper real-Portage test (no ::gentoo, no toolchain to build
# here): the stage3's Portage is the real one from PyPI; this only records the update.
EAPI=8
DESCRIPTION="build-helper test package sys-apps/portage (STAND-IN)"
HOMEPAGE="https://example.invalid"
S="${WORKDIR}"
LICENSE="MIT"
SLOT="0"
KEYWORDS="amd64"
IUSE=""

src_install() {
	mkdir -p "${ED}/usr/share/${PN}" || die
	echo "${CATEGORY}/${PF} STAND-IN" > "${ED}/usr/share/${PN}/${PN}.txt" || die
}
