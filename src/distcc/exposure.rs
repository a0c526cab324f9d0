//! How far `distcc-helper` opens the build machine: its `--allow` networks compared with the
//! networks this machine is on, and its listen address. distccd runs any compiler job for any
//! address its `--allow` list admits, so a list wider than the machine's own networks (e.g.
//! `0.0.0.0/0`), or listening on every address without saying so, deserves a warning.
//!
//! The machine's networks are its routes to directly attached networks: the kernel's IPv4
//! routing table `/proc/net/route` (each route's destination and mask, default routes
//! skipped) and its IPv6 addresses `/proc/net/if_inet6` (each address with its prefix
//! length), plus the loopback networks `127.0.0.0/8` and `::1/128` (proc(5)).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address with a prefix length (`10.0.0.0/8`; a host is `/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length in bits (0 to 32, or to 128 for IPv6).
    pub bits: u8,
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

impl Net {
    /// Parses an `--allow` value (`ADDR` or `ADDR/BITS`, see
    /// [`super::helper::check_allow`]); `None` when it is not one.
    pub fn parse(value: &str) -> Option<Net> {
        let (addr, bits) = match value.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (value, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b.parse::<u8>().ok().filter(|&b| b <= max)?,
            None => max,
        };
        Some(Net { addr, bits })
    }

    /// True when every address of `self` is in `other` (same family, prefix at least as
    /// long, same leading bits).
    pub fn within(&self, other: &Net) -> bool {
        if self.bits < other.bits {
            return false;
        }
        match (self.addr, other.addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(other.bits))
                    .unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(other.bits))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

/// The networks of `/proc/net/route` text: each route's destination and mask (hexadecimal:
/// the network-order address printed as a native-endian integer), default routes (mask 0)
/// skipped.
pub fn parse_route(text: &str) -> Vec<Net> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The kernel prints the network-order word as a native integer.
            let (dest, mask) = (
                u32::from_be_bytes(dest.to_ne_bytes()),
                u32::from_be_bytes(mask.to_ne_bytes()),
            );
            (mask != 0).then(|| Net {
                addr: IpAddr::V4(Ipv4Addr::from(dest)),
                bits: mask.count_ones() as u8,
            })
        })
        .collect()
}

/// The networks of `/proc/net/if_inet6` text: each address (32 hexadecimal digits) with its
/// prefix length (hexadecimal, third field).
pub fn parse_if_inet6(text: &str) -> Vec<Net> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let addr = u128::from_str_radix(f.first()?, 16).ok()?;
            let bits = u8::from_str_radix(f.get(2)?, 16)
                .ok()
                .filter(|&b| b <= 128)?;
            Some(Net {
                addr: IpAddr::V6(Ipv6Addr::from(addr)),
                bits,
            })
        })
        .collect()
}

/// This machine's networks (see the module doc); unreadable files give none of theirs.
pub fn own_networks() -> Vec<Net> {
    let mut out = vec![
        Net {
            addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
            bits: 8,
        },
        Net {
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            bits: 128,
        },
    ];
    if let Ok(t) = std::fs::read_to_string("/proc/net/route") {
        out.extend(parse_route(&t));
    }
    if let Ok(t) = std::fs::read_to_string("/proc/net/if_inet6") {
        out.extend(parse_if_inet6(&t));
    }
    out
}

/// The warnings for a helper allowing `allow` and listening on `listen` (`listen_given`:
/// whether `--listen` was on the command line), given the machine's networks `own`: one per
/// allowed network not within any of them, and one for listening on every address by
/// default.
pub fn warnings(allow: &[String], listen: IpAddr, listen_given: bool, own: &[Net]) -> Vec<String> {
    let mut out = Vec::new();
    let shown: Vec<String> = own.iter().map(Net::to_string).collect();
    for a in allow {
        let Some(net) = Net::parse(a) else { continue };
        if !own.iter().any(|o| net.within(o)) {
            out.push(format!(
                "--allow {a} is wider than this machine's own networks ({}): every address in \
                 it may run compilers here; allow only your build machines' network",
                shown.join(", ")
            ));
        }
    }
    if listen.is_unspecified() && !listen_given {
        out.push(format!(
            "distccd listens on every address ({listen}) of this machine: give --listen ADDR \
             (the address on your build machines' network) to listen on one only, or \
             --listen {listen} to keep every address without this warning"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> Vec<Net> {
        vec![
            Net::parse("127.0.0.0/8").unwrap(),
            Net::parse("192.168.1.0/24").unwrap(),
            Net::parse("fd00:1::/64").unwrap(),
        ]
    }

    #[test]
    fn allowing_everyone_or_a_foreign_network_is_warned_about() {
        let allow: Vec<String> = ["0.0.0.0/0", "10.0.0.0/8", "::/0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let w = warnings(&allow, "192.168.1.5".parse().unwrap(), true, &own());
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("--allow 0.0.0.0/0 is wider"), "{}", w[0]);
        assert!(w[0].contains("192.168.1.0/24"), "{}", w[0]);
    }

    #[test]
    fn allowing_the_machines_own_networks_is_quiet() {
        let allow: Vec<String> = ["192.168.1.0/24", "192.168.1.7", "127.0.0.1", "fd00:1::/80"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(warnings(&allow, "192.168.1.5".parse().unwrap(), false, &own()).is_empty());
    }

    #[test]
    fn listening_everywhere_is_warned_about_unless_asked_for() {
        let allow = vec!["127.0.0.1".to_string()];
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let w = warnings(&allow, any, false, &own());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("--listen ADDR"), "{}", w[0]);
        assert!(warnings(&allow, any, true, &own()).is_empty());
    }

    #[test]
    fn the_kernels_tables_give_the_attached_networks_without_the_default_route() {
        let route =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                     eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(parse_route(route), [Net::parse("192.168.1.0/24").unwrap()]);
        let inet6 = "fd000001000000000000000000000005 02 40 00 80 eth0\n\
                     00000000000000000000000000000001 01 80 10 80 lo\n";
        assert_eq!(
            parse_if_inet6(inet6),
            [
                Net::parse("fd00:1::5/64").unwrap(),
                Net::parse("::1/128").unwrap()
            ]
        );
    }
}
