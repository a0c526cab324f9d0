//! `DISTCC_HOSTS` as a starter option: checking the host list and the environment it adds to
//! every step of a run.
//!
//! The format is distcc's own (distcc(1), "HOST SPECIFICATIONS"): whitespace-separated
//! entries `localhost[/LIMIT]`, `HOST[:PORT][/LIMIT][,OPTION...]` (TCP), `@HOST[/LIMIT]` or
//! `USER@HOST[/LIMIT]` (ssh), and the global options `--randomize`, `--localslots=N`,
//! `--localslots_cpp=N`. Pure: nothing here touches the system.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::Problem;

/// distcc's job limit for a host that names none (distcc(1): 4 for remote hosts, 2 for
/// `localhost`).
const DEFAULT_REMOTE_LIMIT: u32 = 4;
const DEFAULT_LOCAL_LIMIT: u32 = 2;

/// Options distcc accepts after a host (distcc(1)): `lzo` compression, `cpp` (pump mode),
/// `auth` (GSSAPI authentication).
const HOST_OPTIONS: [&str; 3] = ["lzo", "cpp", "auth"];

/// Checks a starter's `distcc_hosts` value; returns it with its entries joined by one space,
/// `None` when empty.
///
/// Errors: a message naming the first entry that is not a distcc host specification.
pub fn parse(s: &str) -> Result<Option<String>, String> {
    let mut out = Vec::new();
    for word in s.split_whitespace() {
        check_entry(word)?;
        out.push(word);
    }
    Ok((!out.is_empty()).then(|| out.join(" ")))
}

fn check_entry(word: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "`{word}` is not a distcc host ({why}); expected entries such as \
             \"192.168.1.10/8,lzo helper2:3632/16 localhost/2\" (distcc(1), HOST SPECIFICATIONS)"
        ))
    };
    if let Some(opt) = word.strip_prefix("--") {
        return match opt.split_once('=') {
            None if opt == "randomize" => Ok(()),
            Some(("localslots" | "localslots_cpp", n)) if n.parse::<u32>().is_ok() => Ok(()),
            _ => bad("unknown global option"),
        };
    }
    let mut parts = word.split(',');
    let host_limit = parts.next().unwrap_or_default();
    for opt in parts {
        if !HOST_OPTIONS.contains(&opt) {
            return bad("unknown option after `,`: lzo, cpp or auth");
        }
    }
    let (host, limit) = match host_limit.split_once('/') {
        Some((h, l)) => (h, Some(l)),
        None => (host_limit, None),
    };
    if let Some(l) = limit {
        if !l.parse::<u32>().is_ok_and(|n| n > 0) {
            return bad("the job limit after `/` must be a positive number");
        }
    }
    let host = host.trim_start_matches('@');
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let (name, port) = match host.strip_prefix('[') {
        // [IPv6]:port
        Some(rest) => match rest.split_once(']') {
            Some((addr, tail)) => (addr, tail.strip_prefix(':')),
            None => return bad("unclosed `[`"),
        },
        None => match host.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        },
    };
    if let Some(p) = port {
        if !p.parse::<u16>().is_ok_and(|n| n > 0) {
            return bad("the port after `:` must be a number from 1 to 65535");
        }
    }
    let name_ok = |c: char| c.is_ascii_alphanumeric() || ".-_:".contains(c);
    if name.is_empty() || !name.chars().all(name_ok) {
        return bad("no host name or address");
    }
    Ok(())
}

/// The number of compile jobs the hosts take at once: the sum of each host's limit (distcc's
/// defaults when none is given).
pub fn slots(hosts: &str) -> u32 {
    hosts
        .split_whitespace()
        .filter(|w| !w.starts_with("--"))
        .map(|w| {
            let host_limit = w.split(',').next().unwrap_or_default();
            match host_limit.split_once('/') {
                Some((_, l)) => l.parse().unwrap_or(DEFAULT_REMOTE_LIMIT),
                None if host_limit == "localhost" => DEFAULT_LOCAL_LIMIT,
                None => DEFAULT_REMOTE_LIMIT,
            }
        })
        .sum()
}

/// Adds the run's distcc settings to a step environment `env`: `FEATURES` gains `distcc`
/// (Portage stacks `FEATURES` from the environment on top of make.conf, so nothing is written
/// into a make.conf and nothing stays behind after the run), `DISTCC_HOSTS` is `hosts`, and
/// `MAKEOPTS` (when it is still the planned `-j<jobs>`, i.e. the starter's `[env]` does not
/// set it) becomes `-j<jobs + slots(hosts)>` so make has work for the helpers.
pub fn add_run_env(env: &mut BTreeMap<String, String>, hosts: &str, jobs: u32) {
    let features = match env.get("FEATURES") {
        Some(f) if f.split_whitespace().any(|w| w == "distcc") => f.clone(),
        Some(f) if !f.trim().is_empty() => format!("{f} distcc"),
        _ => "distcc".to_string(),
    };
    env.insert("FEATURES".into(), features);
    env.insert("DISTCC_HOSTS".into(), hosts.to_string());
    if env.get("MAKEOPTS").map(String::as_str) == Some(format!("-j{jobs}").as_str()) {
        env.insert(
            "MAKEOPTS".into(),
            format!("-j{}", jobs.saturating_add(slots(hosts))),
        );
    }
}

/// The `check` warning for a starter that sets `distcc_hosts` while its host world
/// (`<host_dir>/worlds/base`) lacks `sys-devel/distcc`: its emerges would then compile
/// everything locally (Portage finds no distcc), and its histories could not serve as
/// helpers. `None` when distcc is off or installed, or the world cannot be read (the host
/// check reports that).
pub fn host_world_warning(host_dir: &Path, hosts: Option<&str>) -> Option<Problem> {
    hosts?;
    let base = host_dir.join("worlds/base");
    // The one reader of configuration files: no FIFO, device or link out of host_dir.
    let text = crate::saferoot::Root::open(host_dir)
        .and_then(|r| {
            r.read_to_string(
                Path::new("worlds/base"),
                crate::saferoot::Resolve::Beneath,
                crate::saferoot::CONFIG_LIMIT,
            )
        })
        .ok()?;
    let atoms: Vec<String> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    (!crate::config::world_has_distcc(&atoms)).then(|| Problem {
        path: base,
        line: None,
        message: "the starter sets distcc_hosts but the host world has no sys-devel/distcc: \
                  the run's emerges would compile everything locally and its histories \
                  cannot serve as distcc helpers; add sys-devel/distcc here"
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_warns_only_when_distcc_is_wanted_and_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("worlds/base");
        std::fs::create_dir_all(base.parent().unwrap()).unwrap();
        std::fs::write(&base, "sys-devel/crossdev\n# sys-devel/distcc\n").unwrap();
        assert_eq!(host_world_warning(tmp.path(), None), None);
        let w = host_world_warning(tmp.path(), Some("a/8")).expect("a warning");
        assert_eq!(w.path, base);
        assert!(w.message.contains("add sys-devel/distcc"), "{w}");
        std::fs::write(&base, "sys-devel/crossdev\n>=sys-devel/distcc-3.4\n").unwrap();
        assert_eq!(host_world_warning(tmp.path(), Some("a/8")), None);
    }

    #[test]
    fn parse_accepts_distcc_host_specifications() {
        for ok in [
            "host1/8 host2/8,lzo",
            "localhost/2 192.168.1.10:3632/16,lzo,cpp",
            "--randomize --localslots=2 @build/4 me@box",
            "[fe80::1]:3632/4 helper.example.org",
        ] {
            assert!(parse(ok).is_ok(), "{ok}: {:?}", parse(ok));
        }
        assert_eq!(
            parse("  a/8\n b/8,lzo ").unwrap().as_deref(),
            Some("a/8 b/8,lzo")
        );
        assert_eq!(parse("  ").unwrap(), None);
    }

    #[test]
    fn parse_names_the_bad_entry() {
        for (bad, why) in [
            ("host/x", "job limit"),
            ("host/0", "job limit"),
            ("host:99999", "port"),
            ("host,gzip", "option"),
            ("--fast", "global option"),
            ("/8", "host name"),
            ("ho;st", "host name"),
        ] {
            let err = parse(&format!("ok/4 {bad}")).unwrap_err();
            assert!(
                err.contains(&format!("`{bad}`")) && err.contains(why),
                "{err}"
            );
        }
    }

    #[test]
    fn slots_add_each_hosts_limit_with_distccs_defaults() {
        assert_eq!(slots("host1/8 host2/8,lzo"), 16);
        assert_eq!(slots("--randomize a b/3 localhost"), 4 + 3 + 2);
    }

    #[test]
    fn run_env_turns_on_distcc_and_widens_the_planned_makeopts() {
        let mut env = BTreeMap::from([("MAKEOPTS".to_string(), "-j4".to_string())]);
        add_run_env(&mut env, "a/8 b/8,lzo", 4);
        assert_eq!(env["FEATURES"], "distcc");
        assert_eq!(env["DISTCC_HOSTS"], "a/8 b/8,lzo");
        assert_eq!(env["MAKEOPTS"], "-j20");
    }

    #[test]
    fn run_env_keeps_the_starters_features_and_makeopts() {
        let mut env = BTreeMap::from([
            ("MAKEOPTS".to_string(), "-j3 -l4".to_string()),
            ("FEATURES".to_string(), "-sandbox".to_string()),
        ]);
        add_run_env(&mut env, "a/8", 4);
        assert_eq!(env["FEATURES"], "-sandbox distcc");
        assert_eq!(env["MAKEOPTS"], "-j3 -l4");
        add_run_env(&mut env, "a/8", 4);
        assert_eq!(env["FEATURES"], "-sandbox distcc");
    }
}
