//! Target names: a crossdev target tuple plus a build name, written `<tuple>.<name>`
//! (e.g. `aarch64-unknown-linux-musl.rpi4b`), as defined in docs/configuration.md.
//!
//! Only the names are checked here; the configuration directory they point to is loaded by
//! [`crate::config::load_target`].

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a target tuple, build name or `<tuple>.<name>` string was rejected. Every message
/// names the offending value and says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The tuple does not have exactly four dash-separated parts.
    #[error(
        "target tuple `{value}` has {parts} part{s}; a crossdev tuple has exactly four: \
         arch-vendor-os-libc (e.g. aarch64-unknown-linux-musl)",
        s = if *parts == 1 { "" } else { "s" }
    )]
    TupleParts { value: String, parts: usize },
    /// One of the four parts is empty (`a--b-c`).
    #[error(
        "target tuple `{value}` has an empty part; a crossdev tuple has four non-empty parts: \
         arch-vendor-os-libc (e.g. aarch64-unknown-linux-musl)"
    )]
    TupleEmptyPart { value: String },
    /// A character outside `[a-z0-9_]` (besides the dashes).
    #[error(
        "target tuple `{value}` contains {ch:?}; its parts may only hold lower-case letters, \
         digits and `_` (e.g. aarch64-unknown-linux-musl)"
    )]
    TupleChar { value: String, ch: char },
    /// The build name is empty.
    #[error("the build name is empty; use letters, digits, `-` and `_` (e.g. rpi4b)")]
    NameEmpty,
    /// A character outside letters, digits, `-` and `_`.
    #[error(
        "build name `{value}` contains {ch:?}; a build name may only hold letters, digits, \
         `-` and `_` (e.g. rpi4b)"
    )]
    NameChar { value: String, ch: char },
    /// A target string without the `.` between tuple and build name.
    #[error("target `{value}` is not `<tuple>.<name>` (e.g. aarch64-unknown-linux-musl.rpi4b)")]
    NoDot { value: String },
}

/// One target: a crossdev tuple and a build name. Both are validated on construction
/// ([`Target::new`], [`Target::parse`], and deserialization).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawTarget")]
pub struct Target {
    /// The crossdev tuple, e.g. `aarch64-unknown-linux-musl`.
    pub tuple: String,
    /// The build name, e.g. `rpi4b`.
    pub name: String,
}

/// Unvalidated form, so that deserializing a [`Target`] validates it too.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    tuple: String,
    name: String,
}

impl TryFrom<RawTarget> for Target {
    type Error = NameError;
    fn try_from(raw: RawTarget) -> Result<Target, NameError> {
        Target::new(&raw.tuple, &raw.name)
    }
}

impl Target {
    /// Builds a target from a tuple and a build name.
    ///
    /// # Errors
    /// [`NameError`] from [`validate_tuple`] or [`validate_name`].
    pub fn new(tuple: &str, name: &str) -> Result<Target, NameError> {
        validate_tuple(tuple)?;
        validate_name(name)?;
        Ok(Target {
            tuple: tuple.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Parses `<tuple>.<name>`. A tuple never holds a `.`, so the string is split at the
    /// first one.
    ///
    /// # Errors
    /// [`NameError::NoDot`] without a `.`, else the errors of [`Target::new`].
    pub fn parse(s: &str) -> Result<Target, NameError> {
        let (tuple, name) = s.split_once('.').ok_or_else(|| NameError::NoDot {
            value: s.to_owned(),
        })?;
        Target::new(tuple, name)
    }

    /// The architecture: the first part of the tuple (`aarch64` for
    /// `aarch64-unknown-linux-musl`).
    pub fn arch(&self) -> &str {
        self.tuple.split('-').next().unwrap_or_default()
    }

    /// The target's configuration directory: `<tree>/configs/<tuple>.<name>`.
    pub fn config_dir(&self, tree: &Path) -> PathBuf {
        tree.join("configs").join(self.to_string())
    }
}

impl fmt::Display for Target {
    /// Writes `<tuple>.<name>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.tuple, self.name)
    }
}

/// Checks a crossdev tuple: exactly four non-empty dash-separated parts made of `[a-z0-9_]`
/// (`arch-vendor-os-libc`).
///
/// # Errors
/// [`NameError::TupleParts`], [`NameError::TupleEmptyPart`] or [`NameError::TupleChar`],
/// each naming the value.
pub fn validate_tuple(s: &str) -> Result<(), NameError> {
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() != 4 {
        return Err(NameError::TupleParts {
            value: s.to_owned(),
            parts: parts.len(),
        });
    }
    if parts.iter().any(|p| p.is_empty()) {
        return Err(NameError::TupleEmptyPart {
            value: s.to_owned(),
        });
    }
    let bad = s
        .chars()
        .find(|&c| !(c == '-' || c == '_' || c.is_ascii_lowercase() || c.is_ascii_digit()));
    match bad {
        Some(ch) => Err(NameError::TupleChar {
            value: s.to_owned(),
            ch,
        }),
        None => Ok(()),
    }
}

/// Checks a build name: non-empty, only ASCII letters, digits, `-` and `_` (so no `/`, `.`,
/// `..` or spaces).
///
/// # Errors
/// [`NameError::NameEmpty`] or [`NameError::NameChar`] naming the value.
pub fn validate_name(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::NameEmpty);
    }
    match s
        .chars()
        .find(|&c| !(c == '-' || c == '_' || c.is_ascii_alphanumeric()))
    {
        Some(ch) => Err(NameError::NameChar {
            value: s.to_owned(),
            ch,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_splits_at_first_dot_and_displays_back() {
        let t = Target::parse("aarch64-unknown-linux-musl.rpi4b").unwrap();
        assert_eq!(t.tuple, "aarch64-unknown-linux-musl");
        assert_eq!(t.name, "rpi4b");
        assert_eq!(t.arch(), "aarch64");
        assert_eq!(t.to_string(), "aarch64-unknown-linux-musl.rpi4b");
        assert_eq!(
            t.config_dir(Path::new("/tree")),
            Path::new("/tree/configs/aarch64-unknown-linux-musl.rpi4b")
        );
    }

    #[test]
    fn tuple_with_three_parts_names_value_and_rule() {
        let e = validate_tuple("x86_64-linux-musl").unwrap_err();
        assert_eq!(
            e.to_string(),
            "target tuple `x86_64-linux-musl` has 3 parts; a crossdev tuple has exactly four: \
             arch-vendor-os-libc (e.g. aarch64-unknown-linux-musl)"
        );
    }

    #[test]
    fn tuple_with_empty_part_or_upper_case_is_rejected() {
        assert!(matches!(
            validate_tuple("a--b-c"),
            Err(NameError::TupleEmptyPart { .. })
        ));
        let e = validate_tuple("X86_64-unknown-linux-musl").unwrap_err();
        assert!(
            e.to_string()
                .contains("`X86_64-unknown-linux-musl` contains 'X'"),
            "{e}"
        );
        assert!(validate_tuple("armv7a-unknown-linux-musleabihf").is_ok());
    }

    #[test]
    fn name_with_slash_dot_dot_or_space_is_rejected() {
        let e = validate_name("a/b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "build name `a/b` contains '/'; a build name may only hold letters, digits, \
             `-` and `_` (e.g. rpi4b)"
        );
        assert!(validate_name("..").is_err());
        assert!(validate_name("a b").is_err());
        assert_eq!(validate_name(""), Err(NameError::NameEmpty));
        assert!(validate_name("zen2-tb_slim").is_ok());
    }

    #[test]
    fn parse_rejects_missing_dot_and_dots_in_name() {
        assert!(matches!(
            Target::parse("x86_64-pc-linux-gnu"),
            Err(NameError::NoDot { .. })
        ));
        assert!(matches!(
            Target::parse("x86_64-pc-linux-gnu.a.b"),
            Err(NameError::NameChar { ch: '.', .. })
        ));
    }

    #[test]
    fn deserializing_validates() {
        let ok: Target =
            serde_json::from_str(r#"{"tuple":"x86_64-pc-linux-gnu","name":"a"}"#).unwrap();
        assert_eq!(ok.name, "a");
        let bad = serde_json::from_str::<Target>(r#"{"tuple":"x86_64-linux-gnu","name":"a"}"#);
        assert!(bad.unwrap_err().to_string().contains("has 3 parts"));
    }
}
