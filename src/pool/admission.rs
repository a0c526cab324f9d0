//! Memory- and load-aware admission: whether the pool may hand out one more token now.
//!
//! While `MemAvailable` (proc(5), `/proc/meminfo`) is below the configured minimum, or the
//! 1-minute load average (`/proc/loadavg`) is at or above the configured maximum, no new token
//! leaves the pool, as steve's `--min-memory-avail` and `--load-average` do (Gentoo's
//! system-wide jobserver, <https://wiki.gentoo.org/wiki/Steve>). Jobs already running keep
//! their tokens: admission only ever delays, it never kills.
//!
//! The readings come through [`SystemProbe`], so the accounting is tested with made-up
//! numbers, without root and without real memory pressure.

use std::path::Path;

use super::PoolError;

/// Where the pool reads the machine's state from.
pub trait SystemProbe: Send {
    /// `MemAvailable` in bytes (proc(5): `/proc/meminfo`, kB = 1024 bytes).
    fn mem_available(&mut self) -> Result<u64, PoolError>;
    /// The 1-minute load average (proc(5): first field of `/proc/loadavg`).
    fn load_average(&mut self) -> Result<f64, PoolError>;
}

/// The real machine: reads `/proc/meminfo` and `/proc/loadavg`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcProbe;

impl SystemProbe for ProcProbe {
    fn mem_available(&mut self) -> Result<u64, PoolError> {
        let path = Path::new("/proc/meminfo");
        let text =
            std::fs::read_to_string(path).map_err(|e| PoolError::io("cannot read", path, e))?;
        parse_meminfo_available(&text).map_err(|why| PoolError::Format {
            path: path.into(),
            why,
        })
    }

    fn load_average(&mut self) -> Result<f64, PoolError> {
        let path = Path::new("/proc/loadavg");
        let text =
            std::fs::read_to_string(path).map_err(|e| PoolError::io("cannot read", path, e))?;
        parse_loadavg(&text).map_err(|why| PoolError::Format {
            path: path.into(),
            why,
        })
    }
}

/// `MemAvailable` in bytes from the text of `/proc/meminfo` (a line `MemAvailable:  123 kB`).
///
/// Errors: a description of what is missing (no such line, not a number, unit not `kB`).
pub fn parse_meminfo_available(text: &str) -> Result<u64, String> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .ok_or("no `MemAvailable:` line (Linux 3.14 or newer has it)")?;
    let mut words = line.split_whitespace();
    let value: u64 = words
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or("`MemAvailable:` is not followed by a number")?;
    match words.next() {
        Some("kB") => value
            .checked_mul(1024)
            .ok_or_else(|| "`MemAvailable:` is too large".to_string()),
        other => Err(format!(
            "`MemAvailable:` is in `{}`, not kB",
            other.unwrap_or("no unit")
        )),
    }
}

/// The 1-minute load average from the text of `/proc/loadavg` (`0.52 0.58 0.59 1/467 12345`).
///
/// Errors: a description when the first field is missing or not a number.
pub fn parse_loadavg(text: &str) -> Result<f64, String> {
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| "the first field is not a load average".to_string())
}

/// The admission limits of a pool; `None` turns a limit off.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AdmissionLimits {
    /// Hand out no token while `MemAvailable` is below this many bytes.
    pub min_mem_avail: Option<u64>,
    /// Hand out no token while the 1-minute load average is at or above this.
    pub max_load: Option<f64>,
}

/// Why admission is closed right now.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason")]
pub enum Held {
    /// `MemAvailable` (bytes) is below `min_mem_avail` (bytes).
    LowMemory {
        /// MemAvailable now, bytes.
        available: u64,
        /// The configured minimum, bytes.
        min: u64,
    },
    /// The 1-minute load average is at or above the limit.
    HighLoad {
        /// The load average now.
        load: f64,
        /// The configured maximum.
        max: f64,
    },
    /// A reading failed; admission stays closed until it works again (fail safe).
    Unreadable {
        /// The error, as text.
        error: String,
    },
}

impl AdmissionLimits {
    /// Whether a new token may be handed out now: `None` when it may, else why not. A probe
    /// that fails closes admission ([`Held::Unreadable`]) rather than ignoring the limit.
    pub fn check(&self, probe: &mut dyn SystemProbe) -> Option<Held> {
        if let Some(min) = self.min_mem_avail {
            match probe.mem_available() {
                Ok(available) if available < min => {
                    return Some(Held::LowMemory { available, min })
                }
                Ok(_) => {}
                Err(e) => {
                    return Some(Held::Unreadable {
                        error: e.to_string(),
                    })
                }
            }
        }
        if let Some(max) = self.max_load {
            match probe.load_average() {
                Ok(load) if load >= max => return Some(Held::HighLoad { load, max }),
                Ok(_) => {}
                Err(e) => {
                    return Some(Held::Unreadable {
                        error: e.to_string(),
                    })
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_available_is_read_in_bytes() {
        let text = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:    2048 kB\n";
        assert_eq!(parse_meminfo_available(text).unwrap(), 2048 * 1024);
        assert!(parse_meminfo_available("MemTotal: 1 kB\n").is_err());
        assert!(parse_meminfo_available("MemAvailable: x kB\n").is_err());
        assert!(parse_meminfo_available("MemAvailable: 12 MB\n").is_err());
    }

    #[test]
    fn loadavg_first_field_is_the_one_minute_load() {
        assert_eq!(parse_loadavg("0.52 0.58 0.59 1/467 12345\n").unwrap(), 0.52);
        assert!(parse_loadavg("").is_err());
        assert!(parse_loadavg("nan 1 1").is_err());
    }

    #[test]
    fn the_real_proc_files_parse() {
        let mut p = ProcProbe;
        assert!(p.mem_available().unwrap() > 0);
        assert!(p.load_average().unwrap() >= 0.0);
    }
}
