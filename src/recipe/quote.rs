//! The one place that turns a value into shell text: every name or path from a
//! configuration, a starter or the plan that a generated step script holds goes through
//! [`sh_quote`] (a word of its own), [`sh_dq`] (inside a double-quoted string) or [`sh_sq`]
//! (inside a single-quoted one).
//!
//! Names are also validated at `check` time (see docs/security.md), so for
//! every valid name both return it unchanged and the scripts stay readable; quoting is what
//! keeps a script inert should anything unvalidated ever reach it. The rules are POSIX sh's
//! (XCU 2.2 Quoting).

/// Quotes `word` as one shell word: unchanged when it holds only letters, digits and
/// `@%+=:,./_-` (none of them special to sh), else in single quotes with each `'` written
/// `'\''`.
pub fn sh_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Quotes and joins words with single spaces (see [`sh_quote`]).
pub fn sh_words<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| sh_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` for use inside a double-quoted string (`"...{}..."`): the four characters that
/// keep a meaning there, `\`, `$`, `` ` `` and `"`, are preceded by `\`; everything else
/// stays literal.
pub fn sh_dq(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '$' | '`' | '"') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `text` for use inside a single-quoted string (`'...{}...'`, e.g. a sed script): each `'`
/// closes the string, is escaped, and reopens it (`'\''`); everything else is literal there.
pub fn sh_sq(text: &str) -> String {
    text.replace('\'', r"'\''")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sh_quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(sh_quote("sys-libs/musl"), "sys-libs/musl");
        assert_eq!(sh_quote(">=a/b-1"), "'>=a/b-1'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_dq("rust.clean"), "rust.clean");
        assert_eq!(sh_dq("a$(b)`c`\"d\\"), r#"a\$(b)\`c\`\"d\\"#);
    }

    /// What `/bin/sh` makes of `script`: printf's output.
    fn sh(script: &str) -> Vec<u8> {
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", script])
            .current_dir(std::env::temp_dir())
            .output()
            .expect("run /bin/sh");
        assert!(out.status.success(), "{script:?}: {out:?}");
        out.stdout
    }

    /// Hostile names: substitutions, quotes, separators, globs, line breaks.
    fn hostile() -> impl Strategy<Value = String> {
        proptest::string::string_regex("([a-z]|\\$\\(touch pwned\\)|`id`|'|\"|\\\\|;|&|\\||\\n| |\\*|\\$[A-Z]+|\\$\\{IFS\\}|~|#|-)*")
            .expect("a valid pattern")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// The shell reads back exactly the text that was quoted, whatever it holds, in both
        /// contexts, and runs nothing.
        #[test]
        fn the_shell_reads_back_exactly_what_was_quoted(text in hostile()) {
            let word = sh(&format!("printf %s {}", sh_quote(&text)));
            prop_assert_eq!(word, text.as_bytes());
            let inside = sh(&format!("printf %s \"x{}x\"", sh_dq(&text)));
            prop_assert_eq!(inside, format!("x{text}x").into_bytes());
            let single = sh(&format!("printf %s 'x{}x'", sh_sq(&text)));
            prop_assert_eq!(single, format!("x{text}x").into_bytes());
        }
    }
}
