//! A step's share of the run's job pool (docs/job-pool.md): which GNU make the environment
//! has decides whether the step joins the jobserver, and how Portage's emerge takes part.
//!
//! - GNU make 4.4 or newer (`make --version` inside the environment): `MAKEFLAGS` names the
//!   target's fifo, `--jobserver-auth=fifo:/run/build-helper/jobserver`, which every make,
//!   ninja ≥ 1.13 and cargo of the step open by path, also from inside an ebuild (Portage
//!   closes inherited descriptors, so the older `R,W` form would never reach an ebuild's
//!   make: it warns "jobserver unavailable" and builds serially). `MAKEOPTS` stays without
//!   `-j` (Portage's emake unsets MAKEOPTS when MAKEFLAGS is set, bug 692576).
//! - Portage that knows `FEATURES=jobserver-token` (`_emerge/Scheduler.py`: it takes a token
//!   for every job beyond its first, from a `fifo:` jobserver only): `FEATURES` gains it, so
//!   `emerge --jobs` draws from the pool too.
//! - Portage's sandbox: `SANDBOX_WRITE` gains the fifo's path, which ebuild.sh merges into
//!   its own (steve's ebuild does the same with `/etc/sandbox.d/90steve`).
//! - Anything else (make older than 4.4, no GNU make): the step runs unpooled with
//!   `MAKEOPTS=-j<jobs>`, as without a pool, and its log says why.

use std::collections::BTreeMap;
use std::path::Path;

use crate::plan::JobPoolPlan;
use crate::pool::{makeflags, JobserverAuth, MakeVersion, FIFO_IN_ENV};
use crate::saferoot::Resolve;
use crate::sys::{ChrootCommand, Group, Sys};

/// Where Portage's `const.py` may be, relative to an environment's root: Gentoo's
/// `usr/lib/python3.X/site-packages`, a pip install's `usr/local/lib/python3.X/dist-packages`.
const PYTHON_LIBS: [&str; 2] = ["usr/lib", "usr/local/lib"];

/// The environment's `make --version`, read by running it chrooted into `root`.
fn make_version(sys: &dyn Sys, root: &Path, env: &BTreeMap<String, String>) -> Option<String> {
    let cmd = ChrootCommand {
        root: root.to_path_buf(),
        program: "/bin/sh".into(),
        args: vec!["-c".into(), "exec make --version 2>/dev/null".into()],
        env: env
            .iter()
            .filter(|(k, _)| k.as_str() == "PATH")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        group: Group::Caller,
        output: None,
        fd3: None,
        cgroup: None,
    };
    match crate::sys::chroot::output(sys, cmd) {
        Ok((0, text)) => Some(String::from_utf8_lossy(&text).into_owned()),
        _ => None,
    }
}

/// Whether the Portage installed under `root` knows `FEATURES=jobserver-token` (its
/// `portage/const.py` lists it in SUPPORTED_FEATURES), for Python 3.8 to 3.30. Read as a
/// process chrooted there would see it, never through a link out of the environment.
pub fn portage_has_jobserver_token(root: &Path) -> bool {
    let Ok(env) = crate::saferoot::Root::open(root) else {
        return false;
    };
    PYTHON_LIBS.iter().any(|lib| {
        (8..=30).any(|minor| {
            ["site-packages", "dist-packages"].iter().any(|sub| {
                let rel = format!("{lib}/python3.{minor}/{sub}/portage/const.py");
                env.read_to_string(Path::new(&rel), Resolve::InRoot, 1 << 20)
                    .is_ok_and(|t| t.contains("\"jobserver-token\""))
            })
        })
    })
}

/// Sets `env` up for one step of a pooled run in the environment `root` and returns the line
/// for the step's log saying what it got.
pub fn step_env(
    sys: &dyn Sys,
    root: &Path,
    env: &mut BTreeMap<String, String>,
    pool: &JobPoolPlan,
) -> String {
    let version = make_version(sys, root, env);
    let parsed = version.as_deref().map(MakeVersion::parse);
    match parsed {
        Some(Ok(v)) if v.has_fifo_auth() => {
            let auth = JobserverAuth::Fifo(FIFO_IN_ENV.into());
            for (k, v) in makeflags::step_env(&auth, pool.max_load.map(|l| l.0)) {
                let v = match (k.as_str(), env.get(&k)) {
                    // The user's own MAKEFLAGS (from [env]) keep their place before ours.
                    ("MAKEFLAGS", Some(user)) if !user.trim().is_empty() => format!("{user} {v}"),
                    _ => v,
                };
                env.insert(k, v);
            }
            // Portage's sandbox lets an ebuild's make write its tokens back only where
            // SANDBOX_WRITE allows; ebuild.sh adds the environment's value to its own (the
            // SANDBOX_* variables are cumulative), as /etc/sandbox.d/90steve does for steve.
            let sandbox = match env.get("SANDBOX_WRITE") {
                Some(w) if !w.trim().is_empty() => format!("{w}:{FIFO_IN_ENV}"),
                _ => FIFO_IN_ENV.to_string(),
            };
            env.insert("SANDBOX_WRITE".into(), sandbox);
            let token = portage_has_jobserver_token(root);
            if token {
                let features = match env.get("FEATURES") {
                    Some(f) if !f.trim().is_empty() => format!("{f} jobserver-token"),
                    _ => "jobserver-token".into(),
                };
                env.insert("FEATURES".into(), features);
            }
            format!(
                "build-helper: job pool of {} tokens: MAKEFLAGS={}{}\n",
                pool.jobs,
                env.get("MAKEFLAGS").map(String::as_str).unwrap_or_default(),
                if token {
                    ", FEATURES+=jobserver-token"
                } else {
                    " (this Portage has no jobserver-token: emerge --jobs is not pooled)"
                }
            )
        }
        other => {
            let which = match other {
                Some(Ok(v)) => format!("GNU make {}.{}", v.major, v.minor),
                _ => "no GNU make".into(),
            };
            env.insert("MAKEOPTS".into(), format!("-j{}", pool.jobs));
            format!(
                "build-helper: {which} in this environment: the run's job pool needs GNU make \
                 4.4 or newer (--jobserver-auth=fifo:); this step runs unpooled with \
                 MAKEOPTS=-j{}\n",
                pool.jobs
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::RecordingSys;

    fn pool() -> JobPoolPlan {
        JobPoolPlan {
            jobs: 3,
            min_mem_avail: None,
            max_load: None,
        }
    }

    #[test]
    fn portage_with_jobserver_token_is_found_in_gentoos_and_pips_layouts() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        assert!(!portage_has_jobserver_token(root));
        let gentoo = root.join("usr/lib/python3.13/site-packages/portage");
        std::fs::create_dir_all(&gentoo).unwrap();
        std::fs::write(
            gentoo.join("const.py"),
            "SUPPORTED_FEATURES = frozenset(\n    [\n        \"ipc-sandbox\",\n    ]\n)\n",
        )
        .unwrap();
        assert!(!portage_has_jobserver_token(root), "an older Portage");
        std::fs::write(
            gentoo.join("const.py"),
            "SUPPORTED_FEATURES = frozenset(\n    [\n        \"jobserver-token\",\n    ]\n)\n",
        )
        .unwrap();
        assert!(portage_has_jobserver_token(root));
        let tmp2 = tempfile::tempdir().unwrap();
        let pip = tmp2
            .path()
            .join("usr/local/lib/python3.11/dist-packages/portage");
        std::fs::create_dir_all(&pip).unwrap();
        std::fs::write(pip.join("const.py"), "        \"jobserver-token\",\n").unwrap();
        assert!(portage_has_jobserver_token(tmp2.path()));
    }

    #[test]
    fn a_link_out_of_the_environment_is_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        let p = outside.path().join("python3.12/site-packages/portage");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("const.py"), "\"jobserver-token\"").unwrap();
        let env = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(env.path().join("usr")).unwrap();
        std::os::unix::fs::symlink(outside.path(), env.path().join("usr/lib")).unwrap();
        assert!(!portage_has_jobserver_token(env.path()));
    }

    #[test]
    fn without_gnu_make_4_4_a_step_runs_unpooled_and_says_why() {
        // The recording seam runs nothing: `make --version` prints nothing, as in an
        // environment without GNU make.
        let sys = RecordingSys::default();
        let mut env = BTreeMap::from([
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
            ("MAKEOPTS".to_string(), String::new()),
        ]);
        let note = step_env(&sys, Path::new("/tree/work/r/M/m"), &mut env, &pool());
        assert_eq!(env["MAKEOPTS"], "-j3");
        assert!(!env.contains_key("MAKEFLAGS"));
        assert!(
            note.contains("no GNU make in this environment")
                && note.contains("needs GNU make 4.4 or newer")
                && note.contains("MAKEOPTS=-j3"),
            "{note}"
        );
        assert_eq!(
            sys.take_lines(),
            vec![
                "chroot /tree/work/r/M/m: /bin/sh -c exec make --version 2>/dev/null \
                 (env PATH; caller's group; output piped)"
            ]
        );
    }
}
