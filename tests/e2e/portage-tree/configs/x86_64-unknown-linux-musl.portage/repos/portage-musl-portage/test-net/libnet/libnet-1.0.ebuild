# A test package of the build-helper real-Portage test: it only installs files.
EAPI=8
DESCRIPTION="build-helper test package test-net/libnet"
HOMEPAGE="https://example.invalid"
S="${WORKDIR}"
LICENSE="MIT"
SLOT="0"
KEYWORDS="amd64"
RDEPEND="test-base/libbase"

src_install() {
	mkdir -p "${ED}/usr/share/${PN}" "${ED}/usr/share/doc/${PF}" "${ED}/etc" || die
	echo "# configuration of ${PN}" > "${ED}/etc/${PN}.conf" || die
	echo "${CATEGORY}/${PF}" > "${ED}/usr/share/${PN}/${PN}.txt" || die
	echo "documentation of ${PN}" > "${ED}/usr/share/doc/${PF}/README" || die
}
