# STAND-IN for app-portage/cpuid2cpuflags in the build-helper real-Portage test (no ::gentoo, no toolchain to build
# here): installs no cpuid2cpuflags command, so the steps use no CPU flags.
EAPI=8
DESCRIPTION="build-helper test package app-portage/cpuid2cpuflags (STAND-IN)"
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
