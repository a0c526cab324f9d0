# STAND-IN for ::gentoo sys-kernel/gentoo-kernel in the build-helper real-Portage test: it
# compiles nothing, but does what the recipe relies on as ::gentoo's eclasses do:
# - kernel-build.eclass, kernel-build_merge_configs: the user's fragments are read from
#   ${BROOT}/etc/kernel/config.d/*.config, the build environment's, never ROOT's; the
#   stand-in image lists the fragments it merged, with their contents;
# - kernel-build.eclass, kernel-build_src_install: the image is installed at
#   /usr/src/linux-${KV}/$(dist-kernel_get_image_path) (amd64: arch/x86/boot/bzImage), the
#   modules in /lib/modules/${KV};
# - kernel-install.eclass, kernel-install_pkg_postinst: /usr/src/linux points at the new
#   tree, and the kernel is installed into /boot only when ROOT is empty.
EAPI=8
DESCRIPTION="build-helper test package sys-kernel/gentoo-kernel (STAND-IN)"
HOMEPAGE="https://example.invalid"
S="${WORKDIR}"
LICENSE="MIT"
SLOT="${PV}"
KEYWORDS="amd64"
IUSE=""

KV="${PV}.0-gentoo-dist"
IMAGE="arch/x86/boot/bzImage"

src_prepare() {
	default
	local f
	{
		echo "STAND-IN kernel image ${PF} ${KV}"
		echo "merged config fragments:"
		for f in "${BROOT}"/etc/kernel/config.d/*.config; do
			[[ -e ${f} ]] || continue
			echo "${f}"
			cat "${f}" || die
		done
	} > "${WORKDIR}/bzImage" || die
}

src_install() {
	local dir="/usr/src/linux-${KV}"
	mkdir -p "${ED}${dir}/${IMAGE%/*}" "${ED}/lib/modules/${KV}/kernel" || die
	cp "${WORKDIR}/bzImage" "${ED}${dir}/${IMAGE}" || die
	echo "kernel/fs/squashfs/squashfs.ko" > "${ED}/lib/modules/${KV}/modules.order" || die
}

pkg_postinst() {
	ln -sfn "linux-${KV}" "${EROOT}/usr/src/linux" || die
	if [[ -z ${ROOT} ]]; then
		mkdir -p "${EROOT}/boot" || die
		cp "${EROOT}/usr/src/linux-${KV}/${IMAGE}" "${EROOT}/boot/vmlinuz-${KV}" || die
	fi
}
