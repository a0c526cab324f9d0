//! A tar archive for the extractor's tests, written raw (GNU headers whose name and link
//! fields are copied byte for byte), so that unsafe names (`../evil`, absolute paths) and
//! PAX records (`path`, `SCHILY.xattr.*`, `mtime`) are possible; the stage3 extractor's unit
//! tests (`src/stage3/extract_tests.rs`) and the root-only end-to-end tests
//! (`tests/e2e/hostile.rs`) include it with `#[path]`. Each takes the parts it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

/// Every entry's modification time (seconds since the Unix epoch).
pub const MTIME: u64 = 1_700_000_000;

/// A tar archive under construction.
pub struct Ar(tar::Builder<Vec<u8>>);

impl Ar {
    pub fn new() -> Ar {
        Ar(tar::Builder::new(Vec::new()))
    }

    /// A GNU header with mtime [`MTIME`], owned by the user and group running the test (root
    /// under scripts/test.sh), so that the extractor's chown of each entry succeeds without
    /// root too; `name` must fit in 100 bytes.
    pub fn header(kind: EntryType, name: &str, mode: u32, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_mode(mode);
        h.set_uid(nix::unistd::geteuid().as_raw().into());
        h.set_gid(nix::unistd::getegid().as_raw().into());
        h.set_mtime(MTIME);
        h.set_size(size);
        h
    }

    /// Appends `h` (its checksum set) with `data`.
    pub fn add(&mut self, mut h: Header, data: &[u8]) -> &mut Ar {
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Ar {
        self.add(Self::header(EntryType::Directory, name, mode, 0), b"")
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Ar {
        let h = Self::header(EntryType::Regular, name, mode, data.len() as u64);
        self.add(h, data)
    }

    /// A 2-byte file `hi` owned by `uid`:`gid`, mode 0640.
    pub fn owned_file(&mut self, name: &str, uid: u64, gid: u64) -> &mut Ar {
        let mut h = Self::header(EntryType::Regular, name, 0o640, 2);
        h.set_uid(uid);
        h.set_gid(gid);
        self.add(h, b"hi")
    }

    /// A symbolic (`EntryType::Symlink`) or hard (`EntryType::Link`) link to `target`.
    pub fn link(&mut self, kind: EntryType, name: &str, target: &str) -> &mut Ar {
        let mut h = Self::header(kind, name, 0o777, 0);
        h.as_gnu_mut().unwrap().linkname[..target.len()].copy_from_slice(target.as_bytes());
        self.add(h, b"")
    }

    /// A device node or FIFO, mode 0666.
    pub fn node(&mut self, kind: EntryType, name: &str, major: u32, minor: u32) -> &mut Ar {
        let mut h = Self::header(kind, name, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.add(h, b"")
    }

    /// A PAX extended header with `records` for the next entry (POSIX.1-2001 `pax`: each
    /// record is `<length> <key>=<value>\n`, the length counting itself).
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Ar {
        let mut data = Vec::new();
        for (key, value) in records {
            let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        let h = Self::header(
            EntryType::XHeader,
            "././@PaxHeader",
            0o644,
            data.len() as u64,
        );
        self.add(h, &data)
    }

    /// The archive's bytes (uncompressed); the builder starts a new, empty archive.
    pub fn tar(&mut self) -> Vec<u8> {
        let builder = std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()));
        builder.into_inner().unwrap()
    }

    /// Writes the archive, xz-compressed, to `<dir>/stage3.tar.xz` and returns that path.
    pub fn write(&mut self, dir: &Path) -> PathBuf {
        let tar = self.tar();
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        std::io::Write::write_all(&mut xz, &tar).unwrap();
        let path = dir.join("stage3.tar.xz");
        std::fs::write(&path, xz.finish().unwrap()).unwrap();
        path
    }
}
