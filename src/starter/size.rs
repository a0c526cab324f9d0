//! Byte sizes as a user writes them in a starter or on the command line (`"2G"`, `"512M"`,
//! `"1048576"`), for the job pool's memory admission (`min_mem_avail`), and load-average
//! limits (`max_load`).
//!
//! The suffixes are binary (K = 1024), as steve's `--min-memory-avail` and procps' `free`
//! read them; a trailing `B` or `iB` is accepted (`2GiB`, `512MB` both mean powers of 1024).

/// A size or load limit that cannot be read: what is wrong and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// A size such as `min_mem_avail = "2G"` could not be read.
    #[error(
        "bad size `{input}` for {what}: {why}; write a whole number of bytes with an optional \
         suffix K, M, G or T (powers of 1024), e.g. \"2G\" or \"512M\""
    )]
    BadSize {
        /// The setting the size was given for (e.g. `min_mem_avail`).
        what: String,
        /// The text as given.
        input: String,
        /// What is wrong with it.
        why: String,
    },
    /// A load-average limit that is not a positive finite number.
    #[error("bad load-average limit `{input}`: {why}; give a positive number such as 4 or 3.5")]
    BadLoad {
        /// The text or value as given.
        input: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Parses `input`, a size in bytes for the setting `what`: digits, optionally a decimal
/// fraction (`1.5G`), then optionally one of `K`, `M`, `G`, `T` (case-insensitive, powers of
/// 1024) and an optional `B`/`iB`. Surrounding spaces are ignored.
///
/// Errors: [`SizeError::BadSize`] naming `what` and `input` for an empty string, a missing
/// number, an unknown suffix, or a value above `u64::MAX` bytes.
pub fn parse_size(what: &str, input: &str) -> Result<u64, SizeError> {
    let bad = |why: &str| SizeError::BadSize {
        what: what.to_string(),
        input: input.to_string(),
        why: why.to_string(),
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(bad("it is empty"));
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() || number == "." {
        return Err(bad("it does not start with a number"));
    }
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if frac.contains('.') {
        return Err(bad("the number has two decimal points"));
    }
    let unit: u64 = match suffix.trim_start().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return Err(bad(&format!("unknown unit `{}`", suffix.trim()))),
    };
    let too_big = || bad("it is larger than 16 EiB");
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_big())?
    };
    let mut bytes = whole.checked_mul(unit).ok_or_else(too_big)?;
    if !frac.is_empty() {
        // At most 12 fractional digits are meaningful for units up to 2^40.
        let digits = &frac[..frac.len().min(12)];
        let numerator: u64 = digits.parse().map_err(|_| bad("bad fraction"))?;
        let denominator = 10u64.pow(digits.len() as u32);
        let part = (u128::from(numerator) * u128::from(unit)) / u128::from(denominator);
        bytes = bytes
            .checked_add(u64::try_from(part).map_err(|_| too_big())?)
            .ok_or_else(too_big)?;
    }
    Ok(bytes)
}

/// Parses a load-average limit (`"4"`, `"3.5"`): a positive finite number.
///
/// Errors: [`SizeError::BadLoad`] for anything else.
pub fn parse_load(input: &str) -> Result<f64, SizeError> {
    let bad = |why: &str| SizeError::BadLoad {
        input: input.to_string(),
        why: why.to_string(),
    };
    let value: f64 = input
        .trim()
        .parse()
        .map_err(|_| bad("it is not a number"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(bad("it must be above 0"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_binary_suffixes_parse() {
        assert_eq!(parse_size("m", "1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("m", "2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("m", "512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("m", " 512 mib ").unwrap(), 512 << 20);
        assert_eq!(parse_size("m", "1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("m", "4k").unwrap(), 4096);
        assert_eq!(parse_size("m", "1T").unwrap(), 1 << 40);
        assert_eq!(parse_size("m", "0").unwrap(), 0);
    }

    #[test]
    fn bad_sizes_say_what_and_how_to_write_it() {
        for bad in [
            "",
            "  ",
            "G",
            "2X",
            "-1G",
            "2..5G",
            "1.2.3",
            "99999999999999999999",
            "16777216T",
        ] {
            let err = parse_size("min_mem_avail", bad).unwrap_err().to_string();
            assert!(err.contains("min_mem_avail"), "{bad}: {err}");
            assert!(err.contains("\"2G\""), "{bad}: {err}");
        }
    }

    #[test]
    fn load_limits_must_be_positive_numbers() {
        assert_eq!(parse_load("3.5").unwrap(), 3.5);
        for bad in ["", "x", "0", "-1", "inf", "NaN"] {
            assert!(parse_load(bad).is_err(), "{bad}");
        }
    }
}
