# A test package of the build-helper real-Portage test: STAND-IN for the initramfs box; it
# only installs a shell script named toybox (the `initramfs` step builds it statically with
# the configuration's toybox-mini.config in the real recipe).
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
