//! Tests of loading starters, on temporary trees.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::*;

const TARGET: &str = "[[target]]\ntuple = \"x86_64-unknown-linux-musl\"\nname = \"demo-a\"\n";

/// A tree with `<tree>/starters/s.toml` holding `text` and config directories for `targets`.
struct Tree {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    starter: PathBuf,
}

fn tree(text: &str, targets: &[&str]) -> Tree {
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    for t in targets {
        fs::create_dir_all(root.join("configs").join(t)).unwrap();
    }
    fs::create_dir_all(root.join("starters")).unwrap();
    let starter = root.join("starters/s.toml");
    fs::write(&starter, text).unwrap();
    Tree {
        _tmp: tmp,
        root,
        starter,
    }
}

fn demo(text: &str) -> Tree {
    tree(
        &format!("{TARGET}{text}"),
        &["x86_64-unknown-linux-musl.demo-a"],
    )
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load_with(t: &Tree, vars: &[(&str, &str)]) -> Result<Starter, StarterError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    load(&t.starter, &|name| vars.get(name).cloned())
}

fn err(t: &Tree) -> String {
    load(&t.starter, &no_env).unwrap_err().to_string()
}

#[test]
fn minimal_starter_gets_defaults_and_tree_is_parent_of_starter_folder() {
    let t = demo("");
    let s = load(&t.starter, &no_env).unwrap();
    assert_eq!(s.tree, t.root);
    assert_eq!(s.path, t.starter);
    assert_eq!(
        s.targets,
        [Target::parse("x86_64-unknown-linux-musl.demo-a").unwrap()]
    );
    let o = &s.options;
    assert_eq!(o.ui, None);
    assert_eq!(
        (o.mirror.as_str(), o.arch.as_str()),
        (DEFAULT_MIRROR, "amd64")
    );
    assert_eq!(o.stage3, "amd64-musl-hardened");
    assert_eq!((o.mount_type, o.tmp_type), (MountType::Bind, TmpType::None));
    assert_eq!(
        (o.mount_opts.as_str(), o.tmp_size.as_str()),
        ("size=30G", "30G")
    );
    assert!(o.jobs >= 1);
    assert_eq!(
        (&o.history, o.history_type),
        (&HistorySel::Latest, HistoryType::Squashfs)
    );
    assert_eq!(
        (o.compressor.as_str(), o.compression_level),
        ("zstd", Some(5))
    );
    assert_eq!(o.distfiles, t.root.join("distfiles"));
    assert!(o.umount_ask && !o.mount_hist);
    assert_eq!(
        (&o.gentoo_mirrors, o.pass_env.len(), s.env.len()),
        (&None, 0, 0)
    );
}

#[test]
fn every_documented_key_is_read() {
    let t = tree(
        r#"
[[target]]
tuple = "x86_64-unknown-linux-musl"
name  = "demo-a"
[[target]]
tuple = "aarch64-unknown-linux-gnu"
name  = "demo_b"
[options]
ui = "plain"
mirror = "file:///srv/mirror/"
arch = "arm64"
mount_type = "tmpfs"
mount_opts = "size=10G,mode=755"
tmp_type = "tmpfs"
tmp_size = "50%"
jobs = 16
job_pool = false
min_mem_avail = "1.5G"
max_load = 6
history = "2024-05-01"
history_type = "files"
compressor = "xz"
compression_level = 9
distfiles = "/var/cache/distfiles"
umount_ask = false
gentoo_mirrors = "https://a.example  https://b.example"
pass_env = ["BH_DEMO_FAIL", "BH_DEMO_FAIL"]
notify = ["ntfy", "publish", "builds"]
[env]
MAKEOPTS = "-j16"
"#,
        &[
            "x86_64-unknown-linux-musl.demo-a",
            "aarch64-unknown-linux-gnu.demo_b",
        ],
    );
    let s = load(&t.starter, &no_env).unwrap();
    assert_eq!(s.targets[1].to_string(), "aarch64-unknown-linux-gnu.demo_b");
    let o = &s.options;
    assert_eq!(o.ui, Some(UiKind::Plain));
    assert_eq!(o.mirror, "file:///srv/mirror");
    assert_eq!(
        (o.arch.as_str(), o.stage3.as_str()),
        ("arm64", "arm64-musl-hardened")
    );
    assert_eq!(
        (o.mount_type, o.tmp_type),
        (MountType::Tmpfs, TmpType::Tmpfs)
    );
    assert_eq!(
        (o.mount_opts.as_str(), o.tmp_size.as_str(), o.jobs),
        ("size=10G,mode=755", "50%", 16)
    );
    assert_eq!(
        (o.job_pool, o.min_mem_avail, o.max_load),
        (false, Some(3 << 29), Some(Load(6.0)))
    );
    assert_eq!(o.history, HistorySel::Name("2024-05-01".into()));
    assert_eq!(o.history_type, HistoryType::Files);
    assert_eq!(
        (o.compressor.as_str(), o.compression_level),
        ("xz", Some(9))
    );
    assert_eq!(o.distfiles, Path::new("/var/cache/distfiles"));
    assert!(!o.umount_ask);
    assert_eq!(
        o.gentoo_mirrors.as_deref(),
        Some("https://a.example https://b.example")
    );
    assert_eq!(o.pass_env, ["BH_DEMO_FAIL"]);
    assert_eq!(o.notify, ["ntfy", "publish", "builds"]);
    assert_eq!(s.env.get("MAKEOPTS").map(String::as_str), Some("-j16"));
}

#[test]
fn plan_json_uses_lower_case_words() {
    let s = load(&demo("[options]\nui = \"tmux\"\n").starter, &no_env).unwrap();
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["options"]["ui"], "tmux");
    assert_eq!(json["options"]["mount_type"], "bind");
    assert_eq!(json["options"]["history"], "latest");
    assert_eq!(json["targets"][0]["name"], "demo-a");
    assert_eq!(serde_json::from_value::<Starter>(json).unwrap(), s);
}

#[test]
fn unknown_option_key_names_key_file_and_line() {
    let t = demo("[options]\nui = \"plain\"\nmount_typ = \"bind\"\n");
    let message = err(&t);
    let at = format!("{}:6: ", t.starter.display());
    assert!(message.starts_with(&at), "{message}");
    assert!(
        message.contains("unknown [options] key `mount_typ`, expected one of `ui`, "),
        "{message}"
    );
}

#[test]
fn unknown_top_level_and_target_keys_name_their_line() {
    let t = demo("\n[option]\nui = \"plain\"\n");
    let message = err(&t);
    assert!(
        message.contains(":5: unknown top-level key `option`, expected one of `target`"),
        "{message}"
    );
    let t = tree(&format!("{TARGET}tupel = \"x\"\n"), &[]);
    let message = err(&t);
    assert!(
        message.contains(":4: unknown [[target]] key `tupel`"),
        "{message}"
    );
}

#[test]
fn wrong_value_type_names_the_line() {
    let message = err(&demo("[options]\n\njobs = \"16\"\n"));
    assert!(
        message.contains(
            ":6: jobs = \"16\" is not valid: expected an integer: 1 or more, found a string"
        ),
        "{message}"
    );
}

#[test]
fn invalid_value_names_key_value_file_and_line() {
    let t = demo("[options]\nmount_type = \"bnd\"\n");
    assert_eq!(
        err(&t),
        format!(
            "{}:5: mount_type = \"bnd\" is not valid: expected one of `bind`, `tmpfs`",
            t.starter.display()
        )
    );
    let message = err(&demo("[options]\ntmp_size = \"30GB\"\n"));
    assert!(
        message.contains(":5: tmp_size = \"30GB\" is not valid: expected a size"),
        "{message}"
    );
    let message = err(&demo("[options]\njobs = 0\n"));
    assert!(message.contains(":5: jobs = 0 is not valid"), "{message}");
    let message = err(&demo("[options]\nmin_mem_avail = \"2X\"\n"));
    assert!(
        message.contains(":5: min_mem_avail = \"2X\" is not valid: bad size `2X` for min_mem_avail: unknown unit `X`"),
        "{message}"
    );
    let message = err(&demo("[options]\nmax_load = 0\n"));
    assert!(
        message.contains(
            ":5: max_load = 0 is not valid: bad load-average limit `0`: it must be above 0"
        ),
        "{message}"
    );
    let message = err(&demo("[options]\nmax_load = \"6\"\n"));
    assert!(message.contains("max_load"), "{message}");
    let message = err(&demo("[options]\njob_pool = \"yes\"\n"));
    assert!(message.contains("job_pool"), "{message}");
    let message = err(&demo(
        "[options]\ncompressor = \"lz4\"\ncompression_level = 1\n",
    ));
    assert!(
        message.contains(":6: compression_level = 1 is not valid: lz4 has no"),
        "{message}"
    );
}

#[test]
fn tuple_with_three_parts_names_value_and_line() {
    let t = tree(
        "[[target]]\ntuple = \"x86_64-linux-musl\"\nname = \"a\"\n",
        &[],
    );
    let message = err(&t);
    assert!(
        message.contains(":2: tuple = \"x86_64-linux-musl\" is not valid: "),
        "{message}"
    );
    assert!(message.contains("has 3 parts"), "{message}");
}

#[test]
fn name_with_slash_is_rejected() {
    let t = tree(
        "[[target]]\ntuple = \"x86_64-unknown-linux-musl\"\nname = \"a/b\"\n",
        &[],
    );
    let message = err(&t);
    assert!(
        message.contains(":3: name = \"a/b\" is not valid: build name `a/b` contains '/'"),
        "{message}"
    );
}

#[test]
fn missing_config_dir_names_the_path_and_what_to_do() {
    let t = tree(TARGET, &[]);
    let dir = t.root.join("configs/x86_64-unknown-linux-musl.demo-a");
    let message = err(&t);
    assert!(
        message.starts_with(&format!("{}:2: ", t.starter.display())),
        "{message}"
    );
    assert!(message.contains(&dir.display().to_string()), "{message}");
    assert!(
        message.contains("create it") && message.contains("build-helper check"),
        "{message}"
    );
}

#[test]
fn duplicate_target_and_no_target_are_errors() {
    let t = demo(TARGET);
    assert!(
        err(&t).contains(":5: target x86_64-unknown-linux-musl.demo-a is already listed at line 2")
    );
    let t = tree("[options]\nui = \"tui\"\n", &[]);
    assert!(err(&t).contains("no [[target]]"));
}

#[test]
fn env_table_needs_strings_and_valid_names() {
    let message = err(&demo("[env]\nJOBS = 16\n"));
    assert!(
        message.contains(":5: JOBS = 16 is not valid: expected a string"),
        "{message}"
    );
    let message = err(&demo("[env]\n\"1X\" = \"a\"\n"));
    assert!(
        message.contains(":5: [env] key = \"1X\" is not valid"),
        "{message}"
    );
    let message = err(&demo("[options]\npass_env = [\"OK\", \"NOT-OK\"]\n"));
    assert!(
        message.contains(":5: pass_env = \"NOT-OK\" is not valid"),
        "{message}"
    );
}

#[test]
fn notify_needs_a_command() {
    let message = err(&demo("[options]\nnotify = []\n"));
    assert!(
        message.contains(":5: notify = [] is not valid") && message.contains("must name a command"),
        "{message}"
    );
    let message = err(&demo("[options]\nnotify = \"ntfy\"\n"));
    assert!(message.contains(":5:"), "{message}");
}

#[test]
fn env_overrides_beat_the_file() {
    let t = demo(
        "[options]\nmirror = \"https://a.example\"\nmount_type = \"tmpfs\"\njobs = 2\n\
         history = \"old\"\numount_ask = true\ngentoo_mirrors = \"https://g.example\"\n",
    );
    let s = load_with(
        &t,
        &[
            ("TMUX_MODE", "on"),
            ("TARBALL_MIRROR", "http://b.example/"),
            ("MNT_TYPE", "bind"),
            ("MNT_OPTS", "size=1G"),
            ("TMP_TYPE", "tmpfs"),
            ("TMP_SIZE", "4G"),
            ("BUILD_JOBS", "7"),
            ("BUILD_HIST", "no"),
            ("HIST_TYPE", "files"),
            ("DISTFILES", "/srv/distfiles"),
            ("UMOUNT_ASK", "no"),
            ("MOUNT_HIST", "yes"),
            ("GENTOO_MIRRORS", ""),
        ],
    )
    .unwrap();
    let o = &s.options;
    assert_eq!(
        (o.ui, o.mirror.as_str()),
        (Some(UiKind::Tmux), "http://b.example")
    );
    assert_eq!(
        (o.mount_type, o.mount_opts.as_str()),
        (MountType::Bind, "size=1G")
    );
    assert_eq!(
        (o.tmp_type, o.tmp_size.as_str(), o.jobs),
        (TmpType::Tmpfs, "4G", 7)
    );
    assert_eq!(
        (&o.history, o.history_type),
        (&HistorySel::None, HistoryType::Files)
    );
    assert_eq!(o.distfiles, Path::new("/srv/distfiles"));
    assert!(!o.umount_ask && o.mount_hist);
    assert_eq!(o.gentoo_mirrors, None);
}

#[test]
fn tmux_mode_off_only_drops_tmux() {
    let t = demo("[options]\nui = \"tmux\"\n");
    assert_eq!(
        load_with(&t, &[("TMUX_MODE", "off")]).unwrap().options.ui,
        None
    );
    let t = demo("[options]\nui = \"plain\"\n");
    assert_eq!(
        load_with(&t, &[("TMUX_MODE", "off")]).unwrap().options.ui,
        Some(UiKind::Plain)
    );
}

#[test]
fn build_hist_selects_latest_name_or_path() {
    let t = demo("[options]\nhistory = \"none\"\n");
    let history = |v: &str| load_with(&t, &[("BUILD_HIST", v)]).unwrap().options.history;
    assert_eq!(history(""), HistorySel::Latest);
    assert_eq!(history("2024-05-01"), HistorySel::Name("2024-05-01".into()));
    assert_eq!(history("/h/x.sqfs"), HistorySel::Path("/h/x.sqfs".into()));
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(history("h/x.sqfs"), HistorySel::Path(cwd.join("h/x.sqfs")));
}

#[test]
fn invalid_env_value_names_the_variable() {
    let t = demo("");
    let message = load_with(&t, &[("MNT_TYPE", "overlay")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "environment variable MNT_TYPE=\"overlay\" is not valid: expected one of `bind`, \
         `tmpfs`; fix or unset it"
    );
    let message = load_with(&t, &[("BUILD_JOBS", "many")])
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("environment variable BUILD_JOBS="),
        "{message}"
    );
    let message = load_with(&t, &[("UMOUNT_ASK", "maybe")])
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("environment variable UMOUNT_ASK="),
        "{message}"
    );
}

#[test]
fn build_helper_tree_moves_the_tree() {
    let t = demo("");
    let other = tree("", &["x86_64-unknown-linux-musl.demo-a"]);
    let root = other.root.display().to_string();
    let s = load_with(&t, &[("BUILD_HELPER_TREE", &root)]).unwrap();
    assert_eq!(
        (s.tree.as_path(), s.options.distfiles.clone()),
        (other.root.as_path(), other.root.join("distfiles"))
    );
    let empty = tempfile::tempdir().unwrap();
    let root = empty.path().display().to_string();
    assert!(matches!(
        load_with(&t, &[("BUILD_HELPER_TREE", &root)]),
        Err(StarterError::MissingConfig { .. })
    ));
    let message = load_with(&t, &[("BUILD_HELPER_TREE", "/no/such/tree")])
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("environment variable BUILD_HELPER_TREE="),
        "{message}"
    );
}

#[test]
fn broken_files_are_errors_not_panics() {
    let t = demo("");
    fs::write(&t.starter, [0xff, 0xfe]).unwrap();
    assert!(matches!(
        load(&t.starter, &no_env),
        Err(StarterError::Read { .. })
    ));
    fs::write(&t.starter, "[[target]\ntuple = ").unwrap();
    assert!(matches!(
        load(&t.starter, &no_env),
        Err(StarterError::Syntax { .. })
    ));
    let missing = t.root.join("starters/none.toml");
    let message = load(&missing, &no_env).unwrap_err().to_string();
    assert!(message.starts_with(&format!("cannot read starter {}", missing.display())));
    fs::write(&t.starter, "[[target]]\nname = \"a\"\n").unwrap();
    assert!(
        err(&t).contains(":2: [[target]] without `tuple`"),
        "{}",
        err(&t)
    );
}

#[test]
fn every_problem_of_a_starter_is_reported_in_one_run() {
    let t = tree(
        "[[target]]\n\
         tuple = \"x86_64-linux-musl\"\n\
         name = \"a\"\n\
         [options]\n\
         umount_ask = flase\n\
         jobs = \"16\"\n\
         mount_type = \"bnd\"\n\
         colour = \"blue\"\n\
         pass_env = \"X\"\n",
        &[],
    );
    let message = err(&t);
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 7, "{message}");
    let at = |n: usize| format!("{}:{n}: ", t.starter.display());
    let expect = [
        (2, "tuple = \"x86_64-linux-musl\" is not valid: "),
        (5, "umount_ask takes a boolean: true or false"),
        (
            6,
            "jobs = \"16\" is not valid: expected an integer: 1 or more, found a string",
        ),
        (
            7,
            "mount_type = \"bnd\" is not valid: expected one of `bind`, `tmpfs`",
        ),
        (8, "unknown [options] key `colour`"),
        (
            9,
            "pass_env = \"X\" is not valid: expected an array of strings",
        ),
    ];
    for ((n, text), line) in expect.iter().zip(&lines) {
        assert!(line.starts_with(&at(*n)), "line {n}: {line}");
        assert!(line.contains(text), "line {n}: {line}");
    }
    assert!(lines[6].starts_with("6 problems in "), "{message}");
}

#[test]
fn distcc_hosts_is_checked_and_names_the_bad_entry_and_line() {
    let s = load_with(
        &demo("[options]\ndistcc_hosts = \"  helper1/8 \\t helper2:3632/8,lzo \"\n"),
        &[],
    )
    .unwrap();
    assert_eq!(
        s.options.distcc_hosts.as_deref(),
        Some("helper1/8 helper2:3632/8,lzo")
    );
    let message = err(&demo("[options]\ndistcc_hosts = \"helper1/eight\"\n"));
    assert!(
        message.contains(":5: distcc_hosts = \"helper1/eight\" is not valid: `helper1/eight`"),
        "{message}"
    );
    let s = load_with(&demo("[options]\ndistcc_hosts = \"\"\n"), &[]).unwrap();
    assert_eq!(s.options.distcc_hosts, None);
}

#[test]
fn env_values_with_nul_or_line_breaks_are_refused() {
    for value in ["a\\u0000b", "a\\nb", "a\\rb"] {
        let t = demo(&format!("[env]\nFOO = \"{value}\"\n"));
        let e = err(&t);
        assert!(
            e.contains("[env] FOO") && e.contains("NUL byte or a line break"),
            "{e}"
        );
    }
    let t = demo("[env]\nFOO = \"spaces and $(dollars) are fine\"\n");
    let s = load(&t.starter, &no_env).unwrap();
    assert_eq!(s.env["FOO"], "spaces and $(dollars) are fine");
}

#[test]
fn path_options_may_not_be_empty_root_or_work() {
    for (key, value, want) in [
        ("distfiles", "", "is empty"),
        ("distfiles", " ", "is empty"),
        ("distfiles", "/", "root directory"),
        ("distfiles", "../../../../../../../..", "root directory"),
        ("distfiles", ".", "would bind them into themselves"),
        ("distfiles", "work/x", "lies inside"),
        ("distfiles", "work/../work", "lies inside"),
        ("history", "/", "root directory"),
        ("history", "./work/run/m", "lies inside"),
        ("openpgp_key", "", "is empty"),
    ] {
        let t = demo(&format!("[options]\n{key} = \"{value}\"\n"));
        let e = err(&t);
        assert!(e.contains(key) && e.contains(want), "{key}={value:?}: {e}");
    }
    let t = demo("");
    for (var, value) in [
        ("DISTFILES", "/"),
        ("BUILD_HIST", "/"),
        ("DISTFILES", &*t.root.join("work").to_string_lossy()),
    ] {
        let e = load_with(&t, &[(var, value)]).unwrap_err().to_string();
        assert!(e.contains(var), "{var}={value}: {e}");
    }
}

#[test]
fn mirror_urls_may_not_hold_shell_characters() {
    for value in [
        "https://x/$(id)",
        "https://x/`id`",
        "https://x/\\\"a",
        "https://x/a;b",
    ] {
        for key in ["mirror", "gentoo_mirrors"] {
            let t = demo(&format!("[options]\n{key} = '{value}'\n"));
            let e = err(&t);
            assert!(e.contains(key), "{key}={value}: {e}");
        }
    }
}

#[test]
fn a_fifo_or_device_as_starter_is_refused_without_blocking() {
    let t = demo("");
    fs::remove_file(&t.starter).unwrap();
    nix::unistd::mkfifo(&t.starter, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let e = err(&t);
    assert!(e.contains("FIFO, not a regular file"), "{e}");
    fs::remove_file(&t.starter).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &t.starter).unwrap();
    let e = err(&t);
    assert!(e.contains("character device"), "{e}");
    fs::remove_file(&t.starter).unwrap();
    fs::write(&t.starter, vec![b'#'; 2 << 20]).unwrap();
    let e = err(&t);
    assert!(e.contains("larger than"), "{e}");
}
