# A test package of the build-helper real-Portage test: STAND-IN for ::gentoo's
# sys-apps/toybox (toybox-0.8.14.ebuild), the initramfs box. As its src_install
# (`dobin toybox`), it installs only /usr/bin/toybox, no applet links; here a shell script
# (the `initramfs` step builds the real one with the configuration's toybox-mini.config).
EAPI=8
DESCRIPTION="build-helper test package sys-apps/toybox (STAND-IN)"
HOMEPAGE="https://example.invalid"
S="${WORKDIR}"
LICENSE="MIT"
SLOT="0"
KEYWORDS="amd64"
IUSE="static savedconfig"

src_install() {
	mkdir -p "${ED}/usr/bin" || die
	printf '#!/bin/sh\necho "STAND-IN toybox $*"\n' > "${ED}/usr/bin/toybox" || die
	chmod 755 "${ED}/usr/bin/toybox" || die
}
