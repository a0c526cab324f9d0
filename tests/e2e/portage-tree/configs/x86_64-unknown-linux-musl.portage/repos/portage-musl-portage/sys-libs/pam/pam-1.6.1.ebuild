# STAND-IN for sys-libs/pam in the build-helper real-Portage test (no ::gentoo, no toolchain to build
# here): the pam-bootstrap package.
EAPI=8
DESCRIPTION="build-helper test package sys-libs/pam (STAND-IN)"
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
