# STAND-IN for sys-libs/glibc in the build-helper real-Portage test (no ::gentoo, no toolchain to build
# here): the host's libc (the stage3's Debian glibc is the real one).
EAPI=8
DESCRIPTION="build-helper test package sys-libs/glibc (STAND-IN)"
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
