//! Owns the address → interface-name map (getifaddrs, or /proc/net/if_inet6 for IPv6).
//! Does not read sockets or counters; it only answers "which interface owns this IP".

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use super::{CollectError, unmap_ip};

/// Which interfaces own each local address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interfaces {
    owners: HashMap<IpAddr, Vec<String>>,
}

impl Interfaces {
    /// All addresses of all families from getifaddrs(3). If that fails, IPv6 addresses from
    /// /proc/net/if_inet6, with a warning (IPv4 sockets then get no interface).
    pub fn live() -> Result<Interfaces, CollectError> {
        match getifaddrs() {
            Ok(pairs) => Ok(Self::from_pairs(pairs)),
            Err(err) => {
                tracing::warn!(error = %err, "getifaddrs failed; using /proc/net/if_inet6 (IPv6 only)");
                Self::from_if_inet6(Path::new("/")).map_err(|_| CollectError::Getifaddrs(err))
            }
        }
    }

    /// Builds the map from (address, interface) pairs; used by tests and the fallbacks.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (IpAddr, String)>) -> Interfaces {
        let mut owners: HashMap<IpAddr, Vec<String>> = HashMap::new();
        for (ip, name) in pairs {
            let names = owners.entry(unmap_ip(ip)).or_default();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Interfaces { owners }
    }

    /// IPv6 addresses from root/proc/net/if_inet6 (`<32 hex> idx plen scope flags name`).
    /// Malformed lines are skipped with a warning.
    pub fn from_if_inet6(root: &Path) -> Result<Interfaces, CollectError> {
        let path = root.join("proc/net/if_inet6");
        let bytes = std::fs::read(&path).map_err(|e| CollectError::read(&path, e))?;
        let text = super::lossless_text(&bytes);
        let mut pairs = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let parsed = match fields.as_slice() {
                [hex, _, _, _, _, name] => u128::from_str_radix(hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 32)
                    .map(|v| (IpAddr::V6(Ipv6Addr::from(v)), name.to_string())),
                _ => None,
            };
            match parsed {
                Some(pair) => pairs.push(pair),
                None => {
                    tracing::warn!(file = %path.display(), line = index + 1, "skipping malformed if_inet6 line")
                }
            }
        }
        Ok(Self::from_pairs(pairs))
    }

    /// The interface owning `ip` when exactly one does; `None` for wildcard, unknown or
    /// ambiguous addresses. Any 127/8 address without its own entry belongs to the interface
    /// owning 127.0.0.1 (the whole block is local to lo).
    pub fn owner(&self, ip: &IpAddr) -> Option<&str> {
        let ip = unmap_ip(*ip);
        if ip.is_unspecified() {
            return None;
        }
        let names = match self.owners.get(&ip) {
            Some(names) => names,
            None if matches!(ip, IpAddr::V4(v4) if v4.is_loopback()) => {
                self.owners.get(&IpAddr::V4(Ipv4Addr::LOCALHOST))?
            }
            None => return None,
        };
        match names.as_slice() {
            [only] => Some(only.as_str()),
            _ => None,
        }
    }
}

/// (address, interface) for every AF_INET/AF_INET6 entry of getifaddrs(3).
fn getifaddrs() -> Result<Vec<(IpAddr, String)>, io::Error> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut pairs = Vec::new();
    let mut cur = head;
    // Bound the walk: a list this long means something is wrong.
    for _ in 0..65_536 {
        if cur.is_null() {
            break;
        }
        // SAFETY: `cur` is a non-null node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated C string owned by the list.
        let name = super::lossless_text(unsafe { CStr::from_ptr(ifa.ifa_name) }.to_bytes());
        // SAFETY: ifa_addr is non-null; sa_family tells which sockaddr it really is.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        let ip = match family {
            libc::AF_INET => {
                // SAFETY: family AF_INET means ifa_addr points at a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
            }
            libc::AF_INET6 => {
                // SAFETY: family AF_INET6 means ifa_addr points at a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
            }
            _ => continue,
        };
        pairs.push((ip, name));
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn owner_rules() {
        let ifs = Interfaces::from_pairs([
            (ip("127.0.0.1"), "lo".to_string()),
            (ip("::1"), "lo".to_string()),
            (ip("192.0.2.2"), "eth0".to_string()),
            (ip("fe80::1"), "eth0".to_string()),
            (ip("fe80::1"), "eth1".to_string()),
        ]);
        assert_eq!(ifs.owner(&ip("127.0.0.1")), Some("lo"));
        assert_eq!(ifs.owner(&ip("127.0.0.2")), Some("lo"));
        assert_eq!(ifs.owner(&ip("::1")), Some("lo"));
        assert_eq!(ifs.owner(&ip("::ffff:192.0.2.2")), Some("eth0"));
        assert_eq!(ifs.owner(&ip("0.0.0.0")), None);
        assert_eq!(ifs.owner(&ip("::")), None);
        assert_eq!(ifs.owner(&ip("fe80::1")), None, "ambiguous");
        assert_eq!(ifs.owner(&ip("198.51.100.1")), None, "unknown");
    }

    #[test]
    fn live_has_loopback() {
        let ifs = Interfaces::live().unwrap();
        assert_eq!(ifs.owner(&ip("127.0.0.1")), Some("lo"));
    }
}
