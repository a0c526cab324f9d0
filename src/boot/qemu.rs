//! The QEMU command line and the kernel command line of a boot (pure: no file is read, nothing
//! is started). The kernel command line carries the original build-helper's boot parameters
//! (`squash_dev`, `squash_dir`, `squash_type`, `squash_stack`, `squash_load`, `docache`),
//! which the example configurations' `initramfs/init` implements; the QEMU options are those
//! of QEMU's manual (`-kernel`/`-initrd`/`-append` direct kernel boot, `-fsdev` +
//! `virtio-9p-pci` for 9p, `-drive file=fat:` for a directory shown as a FAT disk).

use std::path::PathBuf;

/// The machine a build's kernel runs on, from the target's `build-arch` (the kernel's ARCH).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `build-arch` `x86_64` (also `x86`, whose 32-bit kernels run there too).
    X86_64,
    /// `build-arch` `arm64`.
    Aarch64,
}

impl Arch {
    /// The machine for a `build-arch` value; `None` for one `boot` cannot start yet.
    pub fn from_build_arch(build_arch: &str) -> Option<Arch> {
        match build_arch {
            "x86_64" | "x86" | "i386" => Some(Arch::X86_64),
            "arm64" => Some(Arch::Aarch64),
            _ => None,
        }
    }

    /// The QEMU system emulator that runs it.
    pub fn qemu_binary(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// The Debian package holding [`Self::qemu_binary`].
    pub fn debian_package(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86",
            Arch::Aarch64 => "qemu-system-arm",
        }
    }

    /// The serial console's device in the guest.
    pub fn console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
        }
    }

    /// The `uname -m` of a build machine that can run this machine with KVM.
    pub fn host_machine(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

/// How the guest's CPU is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation (`/dev/kvm`), the guest CPU is the host's.
    Kvm,
    /// QEMU's software emulation (TCG): slower, works everywhere.
    Tcg,
}

/// How the build directory reaches the guest (the initramfs init's "medium").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    /// Not at all: every image is inside the initramfs.
    None,
    /// virtio 9p, read-only, mount tag [`NINEP_TAG`] (`squash_type=9p`).
    NineP,
    /// A read-only virtio disk showing the directory as a FAT file system (QEMU's vvfat),
    /// the guest's `vda1` (`squash_type=vfat`).
    Disk,
}

/// The 9p mount tag of the build directory (`squash_dev=` with `squash_type=9p`).
pub const NINEP_TAG: &str = "build";

/// Everything one boot needs; paths are absolute or relative to the current directory.
#[derive(Debug, Clone)]
pub struct BootSpec {
    /// The machine QEMU emulates.
    pub arch: Arch,
    /// KVM or TCG.
    pub accel: Accel,
    /// The kernel image (bzImage / arm64 Image).
    pub kernel: PathBuf,
    /// The separate initramfs (split.initramfs), or `None` when the kernel embeds it.
    pub initramfs: Option<PathBuf>,
    /// The build directory, shared through [`Self::medium`].
    pub build_dir: PathBuf,
    /// How the build directory reaches the guest.
    pub medium: Medium,
    /// `squash_stack`: world images over base, leftmost on top; empty: base only; `None`:
    /// not passed, the init's default applies (`extra` when it finds one, as the original).
    pub stack: Option<Vec<String>>,
    /// `squash_load`: images copied into memory with docache; `None`: the init's default
    /// (the stack).
    pub load: Option<Vec<String>>,
    /// `docache`: copy the images into a tmpfs and release the medium.
    pub docache: bool,
    /// More kernel arguments, appended last.
    pub append: Vec<String>,
    /// Guest memory, MiB.
    pub memory_mib: u32,
    /// The console is a person's terminal (QEMU's monitor is muxed in, Ctrl-A X quits);
    /// otherwise it is a pipe read by the smoke test.
    pub interactive: bool,
}

/// The kernel command line: the serial console, `panic=-1` (a panic reboots, and with
/// `-no-reboot` QEMU exits), the boot parameters, then [`BootSpec::append`].
pub fn kernel_cmdline(spec: &BootSpec) -> String {
    let mut args = vec![
        format!("console={}", spec.arch.console()),
        "panic=-1".into(),
    ];
    match spec.medium {
        Medium::None => {}
        Medium::NineP => {
            args.push(format!("squash_dev={NINEP_TAG}"));
            args.push("squash_type=9p".into());
        }
        Medium::Disk => {
            args.push("squash_dev=vda1".into());
            args.push("squash_type=vfat".into());
        }
    }
    if let Some(stack) = &spec.stack {
        args.push(format!("squash_stack={}", stack.join(":")));
    }
    if let Some(load) = &spec.load {
        args.push(format!("squash_load={}", load.join(":")));
    }
    if spec.docache {
        args.push("docache".into());
    }
    args.extend(spec.append.iter().cloned());
    args.join(" ")
}

/// QEMU's arguments (without the program): machine, accelerator, memory, no network, the
/// kernel and initramfs, the medium, the serial console on standard input/output, and
/// `-no-reboot` so that a power-off, reboot or panic ends QEMU.
pub fn qemu_args(spec: &BootSpec) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    match spec.arch {
        Arch::X86_64 => {}
        Arch::Aarch64 => push(&["-machine", "virt"]),
    }
    match (spec.accel, spec.arch) {
        (Accel::Kvm, _) => push(&["-accel", "kvm", "-cpu", "host"]),
        (Accel::Tcg, Arch::X86_64) => push(&["-accel", "tcg"]),
        // A plain ARMv8.0 core: `max` adds pointer authentication, whose emulation makes a
        // TCG boot several times slower.
        (Accel::Tcg, Arch::Aarch64) => push(&["-accel", "tcg", "-cpu", "cortex-a57"]),
    }
    let memory = spec.memory_mib.to_string();
    push(&["-m", &memory, "-smp", "1", "-nic", "none", "-no-reboot"]);
    if spec.interactive {
        push(&["-nographic"]);
    } else {
        push(&["-display", "none", "-monitor", "none", "-serial", "stdio"]);
    }
    let kernel = spec.kernel.display().to_string();
    push(&["-kernel", &kernel]);
    if let Some(initramfs) = &spec.initramfs {
        let initramfs = initramfs.display().to_string();
        push(&["-initrd", &initramfs]);
    }
    let dir = spec.build_dir.display().to_string();
    match spec.medium {
        Medium::None => {}
        Medium::NineP => {
            let fsdev = format!("local,id=build,path={dir},security_model=none,readonly=on");
            let device = format!("virtio-9p-pci,fsdev=build,mount_tag={NINEP_TAG}");
            push(&["-fsdev", &fsdev, "-device", &device]);
        }
        Medium::Disk => {
            let drive = format!("file=fat:{dir},format=raw,if=virtio,readonly=on");
            push(&["-drive", &drive]);
        }
    }
    let cmdline = kernel_cmdline(spec);
    push(&["-append", &cmdline]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BootSpec {
        BootSpec {
            arch: Arch::X86_64,
            accel: Accel::Tcg,
            kernel: "/t/builds/x.demo.1/EFI/boot/bootx64.efi".into(),
            initramfs: Some("/t/builds/x.demo.1/initramfs".into()),
            build_dir: "/t/builds/x.demo.1".into(),
            medium: Medium::NineP,
            stack: Some(vec!["tools".into(), "net".into()]),
            load: None,
            docache: false,
            append: vec![],
            memory_mib: 512,
            interactive: false,
        }
    }

    #[test]
    fn ninep_boot_shares_the_build_directory_and_names_its_tag() {
        let args = qemu_args(&spec()).join(" ");
        assert_eq!(
            args,
            "-accel tcg -m 512 -smp 1 -nic none -no-reboot -display none -monitor none \
             -serial stdio -kernel /t/builds/x.demo.1/EFI/boot/bootx64.efi \
             -initrd /t/builds/x.demo.1/initramfs \
             -fsdev local,id=build,path=/t/builds/x.demo.1,security_model=none,readonly=on \
             -device virtio-9p-pci,fsdev=build,mount_tag=build \
             -append console=ttyS0 panic=-1 squash_dev=build squash_type=9p \
             squash_stack=tools:net"
        );
    }

    #[test]
    fn docache_load_and_append_follow_the_boot_parameters() {
        let mut s = spec();
        s.docache = true;
        s.load = Some(vec!["net".into(), "media".into()]);
        s.append = vec!["quiet".into(), "rd.debug".into()];
        assert_eq!(
            kernel_cmdline(&s),
            "console=ttyS0 panic=-1 squash_dev=build squash_type=9p squash_stack=tools:net \
             squash_load=net:media docache quiet rd.debug"
        );
    }

    #[test]
    fn images_inside_the_initramfs_need_no_medium() {
        let mut s = spec();
        s.medium = Medium::None;
        s.stack = Some(vec![]);
        assert_eq!(kernel_cmdline(&s), "console=ttyS0 panic=-1 squash_stack=");
        // No stack at all: the init's default (`extra` when it finds one) applies.
        s.stack = None;
        assert_eq!(kernel_cmdline(&s), "console=ttyS0 panic=-1");
        assert!(!qemu_args(&s).iter().any(|a| a.contains("9p")));
    }

    #[test]
    fn a_disk_medium_is_the_directory_as_a_fat_virtio_disk() {
        let mut s = spec();
        s.medium = Medium::Disk;
        let args = qemu_args(&s);
        assert!(
            args.contains(&"file=fat:/t/builds/x.demo.1,format=raw,if=virtio,readonly=on".into())
        );
        assert!(kernel_cmdline(&s).contains("squash_dev=vda1 squash_type=vfat"));
    }

    #[test]
    fn arm64_uses_the_virt_machine_and_its_uart() {
        let mut s = spec();
        s.arch = Arch::Aarch64;
        s.accel = Accel::Kvm;
        s.interactive = true;
        let args = qemu_args(&s);
        assert_eq!(
            args[..6],
            ["-machine", "virt", "-accel", "kvm", "-cpu", "host"]
        );
        assert!(args.contains(&"-nographic".into()));
        assert!(kernel_cmdline(&s).starts_with("console=ttyAMA0 "));
        assert_eq!(Arch::from_build_arch("arm64"), Some(Arch::Aarch64));
        assert_eq!(Arch::from_build_arch("riscv"), None);
        assert_eq!(Arch::Aarch64.debian_package(), "qemu-system-arm");
    }
}
