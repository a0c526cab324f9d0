# STAND-IN for sys-devel/binutils in the build-helper real-Portage test (no ::gentoo, no toolchain to build
# here): installs the profile directory /usr/CHOST/binutils-bin/2.42 that eselect binutils selects.
EAPI=8
DESCRIPTION="build-helper test package sys-devel/binutils (STAND-IN)"
HOMEPAGE="https://example.invalid"
S="${WORKDIR}"
LICENSE="MIT"
SLOT="0"
KEYWORDS="amd64"
IUSE=""

src_install() {
	mkdir -p "${ED}/usr/share/${PN}" || die
	echo "${CATEGORY}/${PF} STAND-IN" > "${ED}/usr/share/${PN}/${PN}.txt" || die
	mkdir -p "${ED}/usr/${CHOST}/binutils-bin/2.42" || die
	echo STAND-IN > "${ED}/usr/${CHOST}/binutils-bin/2.42/STAND-IN" || die
}
