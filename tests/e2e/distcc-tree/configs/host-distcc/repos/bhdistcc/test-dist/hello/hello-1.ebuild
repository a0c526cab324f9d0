# The distcc end-to-end test's package (tests/e2e/distcc.rs): a small C program of several
# files, each compiled on its own (`emake`), so with FEATURES=distcc every object is a distcc
# job; linking stays local, as with distcc always.
EAPI=8
DESCRIPTION="build-helper distcc test program"
HOMEPAGE="https://example.invalid"
S="${WORKDIR}/${P}"
LICENSE="MIT"
SLOT="0"
KEYWORDS="amd64"

src_unpack() {
	mkdir -p "${S}" || die
	cp "${FILESDIR}"/*.c "${FILESDIR}"/Makefile "${S}/" || die
}

src_compile() {
	emake CC=gcc
}

src_install() {
	mkdir -p "${ED}/usr/bin" || die
	cp hello "${ED}/usr/bin/bh-distcc-hello" || die
}
