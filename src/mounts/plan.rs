//! The mount layout of a run as pure data (docs/recipe.md, "Mounts").
//!
//! [`Layout`] says which directories of the tree go where in each environment root; the
//! functions here turn it into ordered [`Entry`] lists for the base (`M` and the primary
//! environment), for each secondary target, and for the history archive. Nothing here touches
//! the system; [`super::exec`] walks the entries.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Target;
use crate::starter::{HistoryType, MountType, TmpType};

/// One thing to do while building the layout, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Entry {
    /// A bind mount (`rbind` when `recursive`). The target directory (or file, when the
    /// source is a file) is created first.
    Bind {
        /// Absolute source path on the build machine.
        source: PathBuf,
        /// Absolute mount point.
        target: PathBuf,
        /// `MS_REC`.
        recursive: bool,
        /// Read-only.
        readonly: bool,
    },
    /// A tmpfs with mount options (`size=30G`, `uid=250,gid=250`...).
    Tmpfs {
        /// Absolute mount point.
        target: PathBuf,
        /// Mount options, may be empty.
        options: String,
    },
    /// procfs.
    Proc {
        /// Absolute mount point.
        target: PathBuf,
    },
    /// An overlayfs `lowerdir=...,upperdir=...,workdir=...`.
    Overlay {
        /// Lower layers, top first.
        lower: Vec<PathBuf>,
        /// Upper directory.
        upper: PathBuf,
        /// Work directory (same filesystem as `upper`).
        work: PathBuf,
        /// Absolute mount point.
        target: PathBuf,
    },
    /// A read-only filesystem image (squashfs history) through a loop device.
    Image {
        /// The image file.
        file: PathBuf,
        /// Absolute mount point.
        target: PathBuf,
    },
    /// A file copied into an environment (not a mount): resolv.conf, the host world.
    Copy {
        /// Source file on the build machine.
        source: PathBuf,
        /// Destination inside an environment root.
        target: PathBuf,
    },
}

impl Entry {
    /// The mount point or destination.
    pub fn target(&self) -> &Path {
        match self {
            Entry::Bind { target, .. }
            | Entry::Tmpfs { target, .. }
            | Entry::Proc { target }
            | Entry::Overlay { target, .. }
            | Entry::Image { target, .. }
            | Entry::Copy { target, .. } => target,
        }
    }
}

/// Where a target's own directories are (absolute paths on the build machine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetDirs {
    /// The target.
    pub target: Target,
    /// Its local repositories: (name, path of `configs/<target>/repos/<name>`).
    pub repos: Vec<(String, PathBuf)>,
    /// Its binary package directory (`binpkgs/<tuple>.<name>`).
    pub binpkgs: PathBuf,
}

/// Everything the layout depends on. All paths are absolute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// `M`: the run's mount directory.
    pub m_dir: PathBuf,
    /// What `M` is a bind of, for mount type bind (`work/<run>/root`).
    pub data_dir: PathBuf,
    /// bind or tmpfs.
    pub mount_type: MountType,
    /// tmpfs options of `M` for mount type tmpfs.
    pub mount_opts: String,
    /// none or tmpfs for tmp, var/tmp, var/tmp/portage.
    pub tmp_type: TmpType,
    /// Size of the var/tmp/portage tmpfs (`30G`).
    pub tmp_size: String,
    /// The history to start from, `None` on a first build.
    pub history: Option<(PathBuf, HistoryType)>,
    /// The tree (holds configs, builds).
    pub tree: PathBuf,
    /// The distfiles directory.
    pub distfiles: PathBuf,
    /// The host's binary package directory (`binpkgs/host`).
    pub host_binpkgs: PathBuf,
    /// The host configuration (`configs/host`, resolved).
    pub host_conf: PathBuf,
    /// Host local repositories: (name, path).
    pub host_repos: Vec<(String, PathBuf)>,
    /// Every target, primary first.
    pub targets: Vec<TargetDirs>,
    /// The run date (`YYYYMMDD-HHMMSS`), suffix of secondary environment names.
    pub date: String,
    /// The directory of the job pool's fifos (one per target, [`crate::pool::fifo_path`]),
    /// each bound at [`crate::pool::FIFO_IN_ENV`] in its target's environment; `None`: no
    /// pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobserver: Option<PathBuf>,
}

/// `root` joined with an absolute path `abs` (leading `/` dropped).
pub fn inside(root: &Path, abs: &Path) -> PathBuf {
    root.join(abs.strip_prefix("/").unwrap_or(abs))
}

fn bind(source: &Path, target: PathBuf) -> Entry {
    Entry::Bind {
        source: source.to_path_buf(),
        target,
        recursive: false,
        readonly: false,
    }
}

impl Layout {
    /// The primary environment root, `M/m`.
    pub fn primary_root(&self) -> PathBuf {
        self.m_dir.join("m")
    }

    /// The directory of a secondary target's environment, `M/<name>-<date>`.
    pub fn secondary_dir(&self, target: &Target) -> PathBuf {
        self.m_dir.join(format!("{}-{}", target.name, self.date))
    }

    /// The environment root a target builds in: `M/m` for the primary, else
    /// `M/<name>-<date>/m`.
    pub fn root_of(&self, target: &Target) -> PathBuf {
        match self.targets.first() {
            Some(first) if &first.target == target => self.primary_root(),
            _ => self.secondary_dir(target).join("m"),
        }
    }

    /// Directories of the tree the layout binds from, which a run creates when missing (the
    /// data directory, distfiles, builds, binary package directories).
    pub fn source_dirs(&self) -> Vec<PathBuf> {
        let mut out = vec![
            self.data_dir.clone(),
            self.distfiles.clone(),
            self.tree.join("builds"),
            self.host_binpkgs.clone(),
        ];
        out.extend(self.targets.iter().map(|t| t.binpkgs.clone()));
        out
    }

    /// The run's view of the tree's `configs/`: `M/conf/m`, an overlay whose lower layer is
    /// the user's `configs/` and whose upper layer `M/conf/u` lives in the run directory. Every
    /// environment sees `configs/` (and the host `target-portage` on `/etc/portage`) through
    /// it, so the recipe's edits (INSTALL_MASK toggles, GENTOO_MIRRORS, savedconfig...) land
    /// in the run, survive `--resume` with mount type bind, and never touch the user's files.
    /// One view is shared by all environments of the run, as the original shares `configs/`.
    pub fn configs_view(&self) -> PathBuf {
        self.m_dir.join("conf/m")
    }

    /// `path` as seen through [`Layout::configs_view`] when it lies in the tree's `configs/`,
    /// else `path` itself.
    pub fn in_configs_view(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(self.tree.join("configs")) {
            Ok(rel) => self.configs_view().join(rel),
            Err(_) => path.to_path_buf(),
        }
    }

    /// `M` itself, the run's view of `configs/` ([`Layout::configs_view`]) and, on an update,
    /// the history under its overlay. On a first build `M/m` is a plain directory that the
    /// stage3 is extracted into.
    pub fn base_entries(&self) -> Vec<Entry> {
        let mut out = vec![match self.mount_type {
            MountType::Bind => bind(&self.data_dir, self.m_dir.clone()),
            MountType::Tmpfs => Entry::Tmpfs {
                target: self.m_dir.clone(),
                options: self.mount_opts.clone(),
            },
        }];
        if let Some((history, kind)) = &self.history {
            let s = self.m_dir.join("s");
            out.push(match kind {
                HistoryType::Squashfs => Entry::Image {
                    file: history.clone(),
                    target: s.clone(),
                },
                HistoryType::Files => Entry::Bind {
                    source: history.clone(),
                    target: s.clone(),
                    recursive: false,
                    readonly: true,
                },
            });
            out.push(Entry::Overlay {
                lower: vec![s],
                upper: self.m_dir.join("u"),
                work: self.m_dir.join("w"),
                target: self.primary_root(),
            });
        }
        let conf = self.m_dir.join("conf");
        out.push(Entry::Overlay {
            lower: vec![self.tree.join("configs")],
            upper: conf.join("u"),
            work: conf.join("w"),
            target: self.configs_view(),
        });
        out
    }

    /// The binds every environment root gets (spec: "In every environment root"), plus the
    /// building target's own repositories.
    pub fn env_entries(&self, root: &Path, target: &TargetDirs) -> Vec<Entry> {
        // The tmpfs mounts come first: a later one on `tmp` would hide the binds of a tree
        // that lives under /tmp or /var/tmp.
        let mut out = Vec::new();
        // The sizes are the original's (tmp and var/tmp 4G, run 10G); a tmpfs takes memory
        // only for what it holds.
        if self.tmp_type == TmpType::Tmpfs {
            out.push(Entry::Tmpfs {
                target: root.join("tmp"),
                options: "size=4G,mode=1777".into(),
            });
            out.push(Entry::Tmpfs {
                target: root.join("var/tmp"),
                options: "size=4G,mode=1777".into(),
            });
            let portage_tmp = format!("uid=250,gid=250,mode=0775,size={}", self.tmp_size);
            out.push(Entry::Tmpfs {
                target: root.join("var/tmp/portage"),
                options: portage_tmp.clone(),
            });
            out.push(Entry::Tmpfs {
                target: root
                    .join("usr")
                    .join(target.target.to_string())
                    .join("tmp/portage"),
                options: portage_tmp,
            });
        }
        out.extend([
            bind(&self.distfiles, root.join("var/cache/distfiles")),
            bind(
                &self.configs_view(),
                inside(root, &self.tree.join("configs")),
            ),
            bind(
                &self.tree.join("builds"),
                inside(root, &self.tree.join("builds")),
            ),
        ]);
        for (name, path) in &self.host_repos {
            out.push(bind(
                &self.in_configs_view(path),
                root.join("var/db/repos").join(name),
            ));
        }
        out.push(bind(&self.host_binpkgs, root.join("var/cache/binpkgs")));
        // Only its own binary packages (BUILD_PKGS): a root that bound every target's would
        // make a run mount N² directories for N targets.
        out.push(bind(&target.binpkgs, inside(root, &target.binpkgs)));
        out.push(Entry::Tmpfs {
            target: root.join("run"),
            options: "size=10G,mode=0755".into(),
        });
        if let Some(dir) = &self.jobserver {
            out.push(bind(
                &crate::pool::fifo_path(dir, &target.target.to_string()),
                inside(root, std::path::Path::new(crate::pool::FIFO_IN_ENV)),
            ));
        }
        out.push(Entry::Proc {
            target: root.join("proc"),
        });
        for dir in ["sys", "dev"] {
            out.push(Entry::Bind {
                source: PathBuf::from("/").join(dir),
                target: root.join(dir),
                recursive: true,
                readonly: false,
            });
        }
        out.push(bind(
            &self.in_configs_view(&self.host_conf.join("target-portage")),
            root.join("etc/portage"),
        ));
        out.push(Entry::Copy {
            source: self.host_conf.join("worlds/base"),
            target: root.join("var/lib/portage/world"),
        });
        out.push(Entry::Copy {
            source: PathBuf::from("/etc/resolv.conf"),
            target: root.join("etc/resolv.conf"),
        });
        for (name, path) in &target.repos {
            out.push(bind(
                &self.in_configs_view(path),
                root.join("var/db/repos").join(name),
            ));
        }
        out
    }

    /// Everything the primary target's environment needs after [`Layout::base_entries`].
    pub fn primary_entries(&self) -> Vec<Entry> {
        match self.targets.first() {
            Some(primary) => self.env_entries(&self.primary_root(), primary),
            None => Vec::new(),
        }
    }

    /// A secondary target's stacked environment: `l` a bind of the primary `m`, `m` the
    /// overlay `l`+`u`, the primary package database bound over its own, then the usual binds.
    pub fn secondary_entries(&self, target: &TargetDirs) -> Vec<Entry> {
        let mut out = self.secondary_prepare_entries(target);
        out.extend(self.secondary_stacked_entries(target));
        out
    }

    /// The part of [`Layout::secondary_entries`] that does not depend on the toolchain, made
    /// while the target waits for it: the bind of the primary root on `l`. A bind, not an
    /// overlay: the primary root may still change under it (overlayfs(5) forbids changing a
    /// lower layer only while an overlay on it is mounted).
    pub fn secondary_prepare_entries(&self, target: &TargetDirs) -> Vec<Entry> {
        let dir = self.secondary_dir(&target.target);
        vec![bind(&self.primary_root(), dir.join("l"))]
    }

    /// The rest of [`Layout::secondary_entries`], mounted once the target's toolchain is
    /// ready: the overlay on `l` (`m`) and everything mounted inside it.
    pub fn secondary_stacked_entries(&self, target: &TargetDirs) -> Vec<Entry> {
        let dir = self.secondary_dir(&target.target);
        let root = dir.join("m");
        let mut out = vec![
            Entry::Overlay {
                lower: vec![dir.join("l")],
                upper: dir.join("u"),
                work: dir.join("w"),
                target: root.clone(),
            },
            bind(
                &self.primary_root().join("var/db/pkg"),
                root.join("var/db/pkg"),
            ),
        ];
        out.extend(self.env_entries(&root, target));
        out
    }

    /// The archive view `M/b`: a bind of the primary `m` with each secondary target's
    /// `usr/<tuple>.<name>` bound in, so the history holds every target.
    pub fn archive_entries(&self) -> Vec<Entry> {
        let b = self.m_dir.join("b");
        let mut out = vec![bind(&self.primary_root(), b.clone())];
        for t in self.targets.iter().skip(1) {
            let usr = Path::new("usr").join(t.target.to_string());
            out.push(bind(&self.root_of(&t.target).join(&usr), b.join(&usr)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(history: Option<(PathBuf, HistoryType)>) -> Layout {
        let t = |tuple: &str, name: &str| TargetDirs {
            target: Target::new(tuple, name).unwrap(),
            repos: vec![("local".into(), PathBuf::from("/t/configs/x/repos/local"))],
            binpkgs: PathBuf::from(format!("/t/binpkgs/{tuple}.{name}")),
        };
        Layout {
            m_dir: "/t/work/r/M".into(),
            data_dir: "/t/work/r/root".into(),
            mount_type: MountType::Bind,
            mount_opts: String::new(),
            tmp_type: TmpType::Tmpfs,
            tmp_size: "8G".into(),
            history,
            tree: "/t".into(),
            distfiles: "/t/distfiles".into(),
            host_binpkgs: "/t/binpkgs/host".into(),
            host_conf: "/t/configs/host".into(),
            host_repos: Vec::new(),
            targets: vec![
                t("x86_64-unknown-linux-musl", "a"),
                t("x86_64-unknown-linux-musl", "b"),
            ],
            date: "20260101-000000".into(),
            jobserver: Some("/t/work/r/jobserver".into()),
        }
    }

    #[test]
    fn each_environment_binds_its_own_targets_fifo_at_the_jobserver_path_after_run() {
        let l = layout(None);
        for t in &l.targets {
            let root = l.root_of(&t.target);
            let entries = l.env_entries(&root, t);
            let run = entries
                .iter()
                .position(|e| e.target() == root.join("run"))
                .unwrap();
            let fifo = entries
                .iter()
                .position(|e| {
                    matches!(e, Entry::Bind { source, target, .. }
                        if *source == Path::new("/t/work/r/jobserver").join(format!("{}.fifo", t.target))
                            && *target == root.join("run/build-helper/jobserver"))
                })
                .unwrap_or_else(|| panic!("no fifo bind for {}: {entries:?}", t.target));
            assert!(run < fifo, "the /run tmpfs would hide the fifo");
        }
        let unpooled = Layout {
            jobserver: None,
            ..l.clone()
        };
        let t = &unpooled.targets[0];
        assert!(!unpooled
            .env_entries(&unpooled.root_of(&t.target), t)
            .iter()
            .any(|e| e.target().ends_with("run/build-helper/jobserver")));
    }

    #[test]
    fn update_mounts_history_image_under_an_overlay() {
        let l = layout(Some(("/t/history/h.sqfs".into(), HistoryType::Squashfs)));
        let base = l.base_entries();
        assert_eq!(base.len(), 4);
        assert!(
            matches!(&base[1], Entry::Image { target, .. } if target == Path::new("/t/work/r/M/s"))
        );
        assert!(matches!(&base[2], Entry::Overlay { lower, target, .. }
            if lower == &[PathBuf::from("/t/work/r/M/s")] && target == Path::new("/t/work/r/M/m")));
    }

    #[test]
    fn first_build_mounts_only_m_and_the_configs_view() {
        let l = layout(None);
        assert_eq!(l.base_entries().len(), 2);
    }

    #[test]
    fn a_waiting_target_gets_only_the_bind_of_the_primary_root_before_its_toolchain() {
        let l = layout(None);
        let t = &l.targets[1];
        let prepare = l.secondary_prepare_entries(t);
        let dir = PathBuf::from("/t/work/r/M/b-20260101-000000");
        // Nothing under the overlay's mount point and no overlay: the primary root may
        // still change under `l`.
        assert_eq!(prepare, [bind(Path::new("/t/work/r/M/m"), dir.join("l"))]);
        let mut both = prepare;
        both.extend(l.secondary_stacked_entries(t));
        assert_eq!(both, l.secondary_entries(t));
    }

    #[test]
    fn tmp_var_tmp_and_run_tmpfs_have_the_original_sizes() {
        let l = layout(None);
        let e = l.secondary_entries(&l.targets[1]);
        let dir = PathBuf::from("/t/work/r/M/b-20260101-000000");
        let options_of = |sub: &str| {
            e.iter().find_map(|x| match x {
                Entry::Tmpfs { target, options } if target == &dir.join(sub) => {
                    Some(options.clone())
                }
                _ => None,
            })
        };
        assert_eq!(options_of("m/tmp").as_deref(), Some("size=4G,mode=1777"));
        assert_eq!(
            options_of("m/var/tmp").as_deref(),
            Some("size=4G,mode=1777")
        );
        assert_eq!(options_of("m/run").as_deref(), Some("size=10G,mode=0755"));
    }

    #[test]
    fn secondary_stacks_on_primary_and_shares_its_package_database() {
        let l = layout(None);
        let e = l.secondary_entries(&l.targets[1]);
        let dir = PathBuf::from("/t/work/r/M/b-20260101-000000");
        assert_eq!(e[0], bind(Path::new("/t/work/r/M/m"), dir.join("l")));
        assert!(matches!(&e[1], Entry::Overlay { lower, target, .. }
            if lower == &[dir.join("l")] && target == &dir.join("m")));
        assert_eq!(
            e[2],
            bind(
                Path::new("/t/work/r/M/m/var/db/pkg"),
                dir.join("m/var/db/pkg")
            )
        );
        // tmp type tmpfs: the target's own portage tmp is a tmpfs owned by portage (250).
        assert!(e
            .iter()
            .any(|x| matches!(x, Entry::Tmpfs { target, options }
            if target == &dir.join("m/usr/x86_64-unknown-linux-musl.b/tmp/portage")
                && options.contains("uid=250") && options.contains("size=8G"))));
        // tmpfs mounts precede the binds they could hide.
        let tmp = e
            .iter()
            .position(|x| x.target() == dir.join("m/tmp"))
            .unwrap();
        let configs = e
            .iter()
            .position(|x| x.target() == dir.join("m/t/configs"))
            .unwrap();
        assert!(tmp < configs);
        // Binds land at the tree's absolute paths inside the root.
        assert!(e.contains(&bind(
            Path::new("/t/work/r/M/conf/m"),
            dir.join("m/t/configs")
        )));
    }

    #[test]
    fn every_environment_sees_configs_only_through_the_run_overlay() {
        let l = layout(None);
        let base = l.base_entries();
        assert!(base.contains(&Entry::Overlay {
            lower: vec!["/t/configs".into()],
            upper: "/t/work/r/M/conf/u".into(),
            work: "/t/work/r/M/conf/w".into(),
            target: "/t/work/r/M/conf/m".into(),
        }));
        let mut all = l.primary_entries();
        for t in l.targets.iter().skip(1) {
            all.extend(l.secondary_entries(t));
        }
        for e in &all {
            if let Entry::Bind { source, .. } = e {
                assert!(
                    !source.starts_with("/t/configs"),
                    "{e:?} binds the user's configs"
                );
            }
        }
        assert!(all.contains(&bind(
            Path::new("/t/work/r/M/conf/m/host/target-portage"),
            "/t/work/r/M/m/etc/portage".into()
        )));
        assert!(all.contains(&bind(
            Path::new("/t/work/r/M/conf/m/x/repos/local"),
            "/t/work/r/M/m/var/db/repos/local".into()
        )));
    }

    #[test]
    fn archive_view_binds_every_secondary_root_into_the_primary() {
        let l = layout(None);
        let e = l.archive_entries();
        assert_eq!(
            e[0],
            bind(Path::new("/t/work/r/M/m"), "/t/work/r/M/b".into())
        );
        assert_eq!(
            e[1],
            bind(
                Path::new("/t/work/r/M/b-20260101-000000/m/usr/x86_64-unknown-linux-musl.b"),
                "/t/work/r/M/b/usr/x86_64-unknown-linux-musl.b".into()
            )
        );
    }
}
