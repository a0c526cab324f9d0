//! Read-only loop devices for squashfs history images, by ioctl (loop(4)).
//!
//! `LOOP_CTL_GET_FREE` on `/dev/loop-control` finds a free device; `LOOP_CONFIGURE`
//! (Linux 5.8) binds the file with `LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR`, so the device is
//! released by the kernel when its last mount goes away: nothing to clean up by hand, even
//! after a crash. Not for general loop management (no detach, no listing).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64` of `<linux/loop.h>` (232 bytes).
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` of `<linux/loop.h>` (304 bytes).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Attaches `file` read-only with autoclear; returns `/dev/loopN` and the open device. Keep the
/// returned [`File`] open until the device is mounted: autoclear releases the device on its
/// last close, which is what frees it when a mount fails.
///
/// Errors: a readable message (no free device, the file cannot be opened, ioctl errno).
pub fn attach(file: &Path) -> Result<(PathBuf, File), String> {
    let backing = OpenOptions::new()
        .read(true)
        .open(file)
        .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .map_err(|e| format!("cannot open /dev/loop-control: {e} (is the loop module loaded?)"))?;
    // Another process may take the free device between the two calls: try a few times.
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns an index or -1.
        let index = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if index < 0 {
            return Err(format!(
                "no free loop device: {}",
                std::io::Error::last_os_error()
            ));
        }
        let path = PathBuf::from(format!("/dev/loop{index}"));
        let device = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(device) => device,
            Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
        };
        let mut name = [0u8; 64];
        let bytes = file.as_os_str().as_encoded_bytes();
        let n = bytes.len().min(63);
        name[..n].copy_from_slice(&bytes[..n]);
        let config = LoopConfig {
            fd: backing.as_raw_fd() as u32,
            block_size: 0,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
                lo_file_name: name,
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: LOOP_CONFIGURE reads a `struct loop_config` that lives for the call.
        let rc = unsafe {
            libc::ioctl(
                device.as_raw_fd(),
                LOOP_CONFIGURE as _,
                &config as *const LoopConfig,
            )
        };
        if rc == 0 {
            return Ok((path, device));
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EBUSY) {
            return Err(format!("LOOP_CONFIGURE on {}: {err}", path.display()));
        }
    }
    Err("no free loop device after 16 tries".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_struct_sizes_match_linux_loop_h() {
        assert_eq!(std::mem::size_of::<super::LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<super::LoopConfig>(), 304);
    }
}
