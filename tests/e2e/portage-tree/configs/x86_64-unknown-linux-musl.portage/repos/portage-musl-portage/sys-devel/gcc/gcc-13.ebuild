# STAND-IN for sys-devel/gcc in the build-helper real-Portage test (no ::gentoo, no toolchain to build
# here): installs the profile directory /usr/lib/gcc/CHOST/13 that eselect gcc selects.
EAPI=8
DESCRIPTION="build-helper test package sys-devel/gcc (STAND-IN)"
HOMEPAGE="https://example.invalid"
S="${WORKDIR}"
LICENSE="MIT"
SLOT="0"
KEYWORDS="amd64"
IUSE="openmp"

src_install() {
	mkdir -p "${ED}/usr/share/${PN}" || die
	echo "${CATEGORY}/${PF} STAND-IN" > "${ED}/usr/share/${PN}/${PN}.txt" || die
	mkdir -p "${ED}/usr/lib/gcc/${CHOST}/13" || die
	echo STAND-IN > "${ED}/usr/lib/gcc/${CHOST}/13/STAND-IN" || die
}
