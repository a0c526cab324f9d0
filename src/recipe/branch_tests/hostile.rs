//! Names that slipped past validation (or a future caller that skips it) stay inert: a
//! world name and a rust target reach the scripts only through the quoting helpers, each
//! quoted for where it stands.

use super::*;

/// Names with a command substitution, backticks, both quotes, a separator and a line break.
const NAMES: [&str; 5] = [
    "a$(touch pwned)b",
    "a`touch pwned`b",
    "a\"b'c",
    "a;touch pwned",
    "a\ntouch pwned",
];

/// A plain name standing in for the hostile one.
const PLAIN: &str = "zzplainzz";

/// Every step script (target and primary) with `name` as a world, a parent and a rust target.
fn scripts(name: &str) -> Vec<(String, String)> {
    let mut c = full(config());
    c.worlds = vec![
        world(name, "base", &["app-misc/a"]),
        world("child", name, &[]),
    ];
    c.split_extra = true;
    let mut r = host(false);
    r.tuples[0].rust_target = Some(name.to_owned());
    steps_of(&c, false)
        .into_iter()
        .chain(primary_steps(&r))
        .map(|s| (s.name, s.script))
        .collect()
}

/// Where a shell reading a text from its start stands at its end: in a word, inside double
/// quotes, or inside single quotes (enough of POSIX sh's rules for the generated scripts:
/// quotes, backslashes, `$(...)` and comments; they hold no here-documents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Word,
    Double,
    Single,
}

fn context(text: &str) -> Context {
    let mut stack = vec![Context::Word];
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let top = *stack.last().unwrap_or(&Context::Word);
        match (top, c) {
            (Context::Single, '\'') => {
                stack.pop();
            }
            (Context::Single, _) => {}
            (_, '\\') => i += 1,
            (_, '$') if chars.get(i + 1) == Some(&'(') => {
                stack.push(Context::Word);
                i += 1;
            }
            (Context::Double, '"') => {
                stack.pop();
            }
            (Context::Word, '"') => stack.push(Context::Double),
            (Context::Word, '\'') => stack.push(Context::Single),
            (Context::Word, ')') if stack.len() > 1 => {
                stack.pop();
            }
            (Context::Word, '#') if i == 0 || chars[i - 1].is_whitespace() => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    *stack.last().unwrap_or(&Context::Word)
}

/// Whether `actual` is `template` with each [`PLAIN`] replaced by `name` quoted for where it
/// stands: [`sh_quote`] in a word, [`sh_dq`] in double quotes, [`sh_sq`] in single quotes.
fn quoted_everywhere(template: &str, actual: &str, name: &str) -> bool {
    let pieces: Vec<&str> = template.split(PLAIN).collect();
    let mut expected = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        expected.push_str(piece);
        if i + 1 < pieces.len() {
            expected.push_str(&match context(&expected) {
                Context::Word => sh_quote(name),
                Context::Double => sh_dq(name),
                Context::Single => sh_sq(name),
            });
        }
    }
    expected == actual
}

#[test]
fn hostile_names_reach_scripts_only_through_the_quoting_helpers() {
    let plain = scripts(PLAIN);
    assert!(plain.iter().any(|(_, s)| s.contains(PLAIN)));
    for name in NAMES {
        for ((step, template), (_, actual)) in plain.iter().zip(scripts(name)) {
            assert!(
                quoted_everywhere(template, &actual, name),
                "{step}: {name:?} is not quoted for where it stands:\n{actual}"
            );
            let parses = std::process::Command::new("/bin/sh")
                .args(["-n", "-c", &actual])
                .status()
                .expect("run /bin/sh -n")
                .success();
            assert!(parses, "{step} with {name:?} does not parse:\n{actual}");
        }
    }
}

#[test]
fn the_quoting_check_catches_a_name_left_unquoted_or_quoted_for_the_wrong_place() {
    let name = "a;touch pwned";
    let template = format!("mkdir {PLAIN} \"$R/{PLAIN}\"\n");
    let good = "mkdir 'a;touch pwned' \"$R/a;touch pwned\"\n";
    assert!(quoted_everywhere(&template, good, name));
    let bare = "mkdir a;touch pwned \"$R/a;touch pwned\"\n";
    assert!(!quoted_everywhere(&template, bare, name));
    assert_eq!(context("x \"$(ls '"), Context::Single);
    assert_eq!(context("echo \"a\\\" b"), Context::Double);
    assert_eq!(context("# it's\necho "), Context::Word);
}
