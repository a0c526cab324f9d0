//! The plan: starter + configurations + the chosen history become a [`Plan`], the whole run
//! as data (targets, world orders, mount layout, every step with its script and environment).
//!
//! Building a plan reads the tree (starter, configuration directories, the history folder's
//! listing) and touches nothing else; `build-helper plan` prints it without root. The
//! supervisor writes it to `work/<run>/plan.json`; workers and `--resume` read it back, so a
//! resumed run executes exactly what was planned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{self, Problem, Target, TargetConfig};
use crate::history::ArchiveOptions;
use crate::mounts::{Layout, TargetDirs};
use crate::recipe::{self, HostRecipe, Step, TargetRecipe, TupleInfo};
use crate::starter::{HistoryType, Starter};

/// Where the stage3 comes from (first builds only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage3Source {
    /// Mirror base URL.
    pub mirror: String,
    /// Gentoo release arch of the build machine.
    pub arch: String,
    /// stage3 flavor.
    pub flavor: String,
    /// The trusted OpenPGP key file; `None` when the user turned signature checks off.
    pub openpgp_key: Option<PathBuf>,
}

/// One target of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetPlan {
    /// The target.
    pub target: Target,
    /// True for the first target, whose environment hosts the shared toolchains.
    pub primary: bool,
    /// The environment root it builds in (absolute, on the build machine).
    pub root: PathBuf,
    /// Worlds in build order: `base` first, then the world tree order.
    pub worlds: Vec<String>,
    /// Environment exported to every step (docs/recipe.md, "Environment"), without BUILD_HELPER_STEP.
    pub env: BTreeMap<String, String>,
    /// Steps in order: the primary phase first for the primary target.
    pub steps: Vec<Step>,
}

/// The run's job pool as planned: `jobs` tokens served as a GNU make jobserver to every
/// target's environment (at [`crate::pool::FIFO_IN_ENV`]), held back while memory is short
/// or the load high (docs/job-pool.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPoolPlan {
    /// Tokens in the pool.
    pub jobs: u32,
    /// No token is handed out while `MemAvailable` is below this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_mem_avail: Option<u64>,
    /// No token is handed out while the 1-minute load average is at or above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_load: Option<crate::starter::Load>,
}

/// A whole run as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// `<primary name>-<date>`.
    pub run_id: String,
    /// `YYYYMMDD-HHMMSS` (UTC).
    pub date: String,
    /// The tree (absolute).
    pub tree: PathBuf,
    /// The starter file (absolute).
    pub starter: PathBuf,
    /// No history: the stage3 is fetched and extracted.
    pub first_build: bool,
    /// The stage3 source on a first build.
    pub stage3: Option<Stage3Source>,
    /// `make -j` jobs for kernels and squashfs.
    pub jobs: u32,
    /// The run's job pool (docs/job-pool.md); `None` with `job_pool = false` (and for
    /// `--mount-hist`, which runs no step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_pool: Option<JobPoolPlan>,
    /// Build-machine variables passed through to every step (names).
    pub pass_env: Vec<String>,
    /// The starter's `notify` command (empty: none); see [`crate::notify`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
    /// Archive settings.
    pub archive: ArchiveOptions,
    /// Ask before unmounting at the end.
    pub umount_ask: bool,
    /// The mount layout.
    pub layout: Layout,
    /// Targets, primary first.
    pub targets: Vec<TargetPlan>,
}

/// Errors while planning.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Configuration problems, all of them.
    #[error("{}", format_problems(.0))]
    Config(Vec<Problem>),
    /// The history selection.
    #[error("{0}")]
    History(String),
}

fn format_problems(problems: &[Problem]) -> String {
    let mut s = String::from("the configuration has problems:");
    for p in problems {
        s.push_str(&format!("\n  {p}"));
    }
    s.push_str("\nfix them (`build-helper check configs/<target>` lists them) and run again");
    s
}

/// The run date for `now` (UTC), `YYYYMMDD-HHMMSS`.
pub fn date_now() -> String {
    chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string()
}

fn host_world_has_rust(atoms: &[String]) -> bool {
    atoms.iter().any(|a| {
        let a = a.trim_start_matches(['=', '<', '>', '~']);
        a.starts_with("dev-lang/rust")
    })
}

impl Plan {
    /// The run directory (`<tree>/work/<run_id>`).
    pub fn run_dir(&self) -> PathBuf {
        crate::rundir::layout::dir(&self.tree, &self.run_id)
    }

    /// The target plan of `target`.
    pub fn target(&self, target: &Target) -> Option<&TargetPlan> {
        self.targets.iter().find(|t| &t.target == target)
    }

    /// Distinct tuples, in target order.
    pub fn tuples(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in &self.targets {
            if !out.contains(&t.target.tuple) {
                out.push(t.target.tuple.clone());
            }
        }
        out
    }

    /// The target's log file.
    pub fn log_path(&self, target: &Target) -> PathBuf {
        crate::rundir::layout::step_log(&self.run_dir(), target)
    }
}

/// `dir` (in `configs`, often a link such as `configs/host`) named by its real directory:
/// under `configs` when it resolves there, else its canonical path (`dir` itself when it
/// cannot be resolved). An environment sees `configs/` through the run's overlay
/// (`Layout::configs_view`), where a link would be followed on the build machine: an absolute
/// one out of the overlay into the user's files, a relative one leaving `configs/` to a
/// wrong place.
fn resolve_in(configs: &Path, dir: &Path) -> PathBuf {
    let real = (std::fs::canonicalize(configs), std::fs::canonicalize(dir));
    match real {
        (Ok(c), Ok(d)) => match d.strip_prefix(&c) {
            Ok(rel) => configs.join(rel),
            Err(_) => d,
        },
        _ => dir.to_path_buf(),
    }
}

/// Builds the plan of `starter` for run date `date`, starting from `history` (resolved by
/// [`crate::history::resolve`]; `None` = first build).
///
/// Errors: every configuration problem at once ([`PlanError::Config`]).
pub fn build(
    starter: &Starter,
    date: &str,
    history: Option<(PathBuf, HistoryType)>,
) -> Result<Plan, PlanError> {
    let tree = starter.tree.clone();
    let configs = tree.join("configs");
    let host_dir = configs.join("host");
    let mut problems = Vec::new();
    let host = match config::load_host(&host_dir) {
        Ok(h) => Some(h),
        Err(p) => {
            problems.extend(p);
            None
        }
    };
    let mut target_configs: Vec<TargetConfig> = Vec::new();
    for t in &starter.targets {
        match config::load_target(&configs.join(t.to_string())) {
            Ok(c) => target_configs.push(c),
            Err(p) => problems.extend(p),
        }
    }
    let Some(host) = host.filter(|_| problems.is_empty()) else {
        return Err(PlanError::Config(problems));
    };
    let first_build = history.is_none();
    let opts = &starter.options;
    let primary_name = starter
        .targets
        .first()
        .map(|t| t.name.clone())
        .unwrap_or_default();
    let run_id = format!("{primary_name}-{date}");
    let host_conf = resolve_in(&configs, &host.dir);
    let run = crate::rundir::layout::dir(&tree, &run_id);
    let binpkgs = tree.join("binpkgs");
    // `--mount-hist` runs no step: no pool to serve.
    let pooled = opts.job_pool && !opts.mount_hist;

    let layout = Layout {
        m_dir: run.join("M"),
        data_dir: run.join("root"),
        mount_type: opts.mount_type,
        mount_opts: opts.mount_opts.clone(),
        tmp_type: opts.tmp_type,
        tmp_size: opts.tmp_size.clone(),
        history: history.clone(),
        tree: tree.clone(),
        distfiles: opts.distfiles.clone(),
        host_binpkgs: binpkgs.join("host"),
        host_conf: host_conf.clone(),
        host_repos: host
            .repos
            .iter()
            .map(|r| (r.clone(), host_conf.join("repos").join(r)))
            .collect(),
        targets: target_configs
            .iter()
            .map(|c| TargetDirs {
                target: c.target.clone(),
                repos: c
                    .repos
                    .iter()
                    .map(|r| {
                        (
                            r.clone(),
                            resolve_in(&configs, &c.dir).join("repos").join(r),
                        )
                    })
                    .collect(),
                binpkgs: binpkgs.join(c.target.to_string()),
            })
            .collect(),
        date: date.to_string(),
        jobserver: pooled.then(|| crate::rundir::layout::jobserver_dir(&run)),
    };

    let mut tuples: Vec<TupleInfo> = Vec::new();
    for c in &target_configs {
        if !tuples.iter().any(|t| t.tuple == c.target.tuple) {
            tuples.push(TupleInfo {
                tuple: c.target.tuple.clone(),
                build_arch: c.build_arch.clone(),
                libc: match c.libc {
                    config::Libc::Musl => "musl".into(),
                    config::Libc::Glibc => "glibc".into(),
                },
                rust_clean: c.rust_clean_atoms.clone(),
                rust_target: host
                    .rust_targets
                    .iter()
                    .find(|(tuple, _)| *tuple == c.target.tuple)
                    .map(|(_, rt)| rt.clone()),
                target_portage: c.dir.join("target-portage").display().to_string(),
                portage_tmpdir: c.portage_tmpdir.clone(),
            });
        }
    }
    let mut portage_tmpdirs: Vec<String> = Vec::new();
    for d in std::iter::once(&host.portage_tmpdir)
        .chain(target_configs.iter().map(|c| &c.portage_tmpdir))
        .flatten()
    {
        if !portage_tmpdirs.contains(d) {
            portage_tmpdirs.push(d.clone());
        }
    }
    let mut compressors = Vec::new();
    for c in &target_configs {
        match c.image_compressor(opts.image_compressor.as_deref()) {
            Ok(comp) => compressors.push(comp),
            Err(p) => problems.push(p),
        }
    }
    if !problems.is_empty() {
        return Err(PlanError::Config(problems));
    }
    let host_recipe = HostRecipe {
        first_build,
        tuples,
        portage_tmpdirs,
        cpuflags: host.cpuflags,
        rust: host_world_has_rust(&host.world_atoms),
        gentoo_mirrors: opts.gentoo_mirrors.is_some(),
    };

    let mut targets = Vec::new();
    for (i, c) in target_configs.iter().enumerate() {
        let primary = i == 0;
        let mut steps = if primary {
            recipe::primary_steps(&host_recipe)
        } else {
            Vec::new()
        };
        steps.extend(recipe::target_steps(&TargetRecipe {
            config: c,
            gentoo_mirrors: opts.gentoo_mirrors.is_some(),
            image_compressor: compressors[i].clone(),
            host_portage_tmpdir: host.portage_tmpdir.clone(),
        }));
        let mut worlds = vec!["base".to_string()];
        worlds.extend(c.worlds.iter().map(|w| w.name.clone()));
        targets.push(TargetPlan {
            target: c.target.clone(),
            primary,
            root: layout.root_of(&c.target),
            worlds,
            env: step_env(starter, c, date, first_build, primary, &host_dir),
            steps,
        });
    }

    Ok(Plan {
        run_id,
        date: date.to_string(),
        tree,
        starter: starter.path.clone(),
        first_build,
        stage3: first_build.then(|| Stage3Source {
            mirror: opts.mirror.clone(),
            arch: opts.arch.clone(),
            flavor: opts.stage3.clone(),
            openpgp_key: opts.verify_signatures.then(|| opts.openpgp_key.clone()),
        }),
        jobs: opts.jobs,
        job_pool: pooled.then(|| JobPoolPlan {
            // distcc's helpers run jobs beside the local ones: the pool grows by their slots,
            // as MAKEOPTS does without a pool (crate::starter::distcc_hosts::add_run_env).
            jobs: opts.jobs.saturating_add(
                opts.distcc_hosts
                    .as_deref()
                    .map_or(0, crate::starter::distcc_hosts::slots),
            ),
            min_mem_avail: opts.min_mem_avail,
            max_load: opts.max_load,
        }),
        pass_env: opts.pass_env.clone(),
        notify: opts.notify.clone(),
        archive: ArchiveOptions {
            history_type: opts.history_type,
            compressor: opts.compressor.clone(),
            level: opts.compression_level,
        },
        umount_ask: opts.umount_ask,
        layout,
        targets,
    })
}

/// The environment of docs/recipe.md ("Environment").
fn step_env(
    starter: &Starter,
    c: &TargetConfig,
    date: &str,
    first_build: bool,
    primary: bool,
    host_dir: &Path,
) -> BTreeMap<String, String> {
    let tree = &starter.tree;
    let t = &c.target;
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_string(), v);
    };
    set(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
    );
    set("HOME", "/root".into());
    set("CROSSDEV_TARGET", t.tuple.clone());
    set("BUILD_NAME", t.name.clone());
    set("BUILD_CONF", c.dir.display().to_string());
    set(
        "BUILD_PKGS",
        tree.join("binpkgs")
            .join(t.to_string())
            .display()
            .to_string(),
    );
    set("BUILD_ARCH", c.build_arch.clone());
    set("BUILD_DATE", date.to_string());
    set(
        "BUILD_DEST",
        tree.join("builds")
            .join(format!("{t}.{date}"))
            .display()
            .to_string(),
    );
    set("BUILD_HELPER_TREE", tree.display().to_string());
    set("BUILD_JOBS", starter.options.jobs.to_string());
    set("HOST_CONF", host_dir.display().to_string());
    set("PRIMARY_BUILD", yes_no(primary));
    set("FIRST_BUILD", yes_no(first_build));
    // With the pool, MAKEOPTS carries no -j: a make given -j on its command line (Portage's
    // emake puts MAKEOPTS there) runs a pool of its own instead of the run's jobserver. The
    // worker adds MAKEFLAGS naming the jobserver to each step (docs/job-pool.md).
    let pooled = starter.options.job_pool && !starter.options.mount_hist;
    set(
        "MAKEOPTS",
        match (pooled, starter.options.max_load) {
            (false, _) => format!("-j{}", starter.options.jobs),
            (true, Some(load)) => format!("-l{}", load.0),
            (true, None) => String::new(),
        },
    );
    if let Some(m) = &starter.options.gentoo_mirrors {
        set("GENTOO_MIRRORS", m.clone());
    }
    for (k, v) in &starter.env {
        set(k, v.clone());
    }
    if let Some(hosts) = &starter.options.distcc_hosts {
        crate::starter::distcc_hosts::add_run_env(&mut env, hosts, starter.options.jobs);
    }
    env
}

#[cfg(test)]
mod resolve_tests {
    use std::os::unix::fs::symlink;

    #[test]
    fn configuration_links_are_named_by_their_real_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let configs = tmp.path().join("configs");
        std::fs::create_dir_all(configs.join("host-amd64")).unwrap();
        std::fs::create_dir_all(tmp.path().join("elsewhere")).unwrap();
        symlink("host-amd64", configs.join("host")).unwrap();
        symlink(configs.join("host-amd64"), configs.join("absolute")).unwrap();
        symlink("../elsewhere", configs.join("out")).unwrap();
        let real = |p: &str| super::resolve_in(&configs, &configs.join(p));
        assert_eq!(real("host"), configs.join("host-amd64"));
        assert_eq!(real("absolute"), configs.join("host-amd64"));
        assert_eq!(
            real("out"),
            std::fs::canonicalize(tmp.path().join("elsewhere")).unwrap()
        );
        assert_eq!(real("missing"), configs.join("missing"));
    }
}

#[cfg(test)]
mod job_pool_tests {
    use crate::starter::Load;

    /// The starter's pool options as the plan carries them: the pool on by default, its
    /// size grown by distcc's helpers, MAKEOPTS without -j (with -l under max_load); off,
    /// MAKEOPTS -j<jobs> as the original had it; `--mount-hist` runs no step, so no pool.
    #[test]
    fn the_plan_carries_the_pool_and_makeopts_follow_it() {
        let (_tmp, mut starter) = crate::explore::tests::demo_tree();
        starter.options.jobs = 3;
        let plan = super::build(&starter, "20260101-000000", None).unwrap();
        let pool = plan.job_pool.as_ref().expect("the pool is on by default");
        assert_eq!(
            (pool.jobs, pool.min_mem_avail, pool.max_load),
            (3, None, None)
        );
        let dir = plan.layout.jobserver.clone().expect("the fifos' directory");
        assert_eq!(dir, plan.run_dir().join("jobserver"));
        assert!(plan.targets.iter().all(|t| t.env["MAKEOPTS"].is_empty()));

        starter.options.min_mem_avail = Some(2 << 30);
        starter.options.max_load = Some(Load(6.5));
        starter.options.distcc_hosts = Some("helper/8".into());
        let plan = super::build(&starter, "20260101-000000", None).unwrap();
        let pool = plan.job_pool.as_ref().unwrap();
        assert_eq!(pool.jobs, 3 + 8, "distcc's slots join the pool");
        assert_eq!(pool.min_mem_avail, Some(2 << 30));
        assert_eq!(plan.targets[0].env["MAKEOPTS"], "-l6.5");

        starter.options.job_pool = false;
        starter.options.distcc_hosts = None;
        let plan = super::build(&starter, "20260101-000000", None).unwrap();
        assert!(plan.job_pool.is_none() && plan.layout.jobserver.is_none());
        assert!(plan.targets.iter().all(|t| t.env["MAKEOPTS"] == "-j3"));

        starter.options.job_pool = true;
        starter.options.mount_hist = true;
        let plan = super::build(&starter, "20260101-000000", None).unwrap();
        assert!(plan.job_pool.is_none() && plan.layout.jobserver.is_none());
        assert!(plan.targets.iter().all(|t| t.env["MAKEOPTS"] == "-j3"));
    }
}
