//! A set of CIDR blocks with fast membership: per address family, sorted and merged ranges
//! searched by binary search (100 000 blocks × 10 000 addresses stay in milliseconds).
//! Does not read files (the profile loader hands it the lines) nor decide alarms.

use std::net::IpAddr;

use protocol::model::unmap_ip as unmap;

use crate::hash::Fnv1a;

/// Merged, sorted, disjoint inclusive ranges per family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    /// Number of entries given (before merging), for display and limits.
    entries: usize,
}

/// One parsed CIDR: address family and inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    V4(u32, u32),
    V6(u128, u128),
}

/// Parses `a.b.c.d/len`, `v6/len`, or a bare address (a host route: /32 or /128, §3.1 notes).
/// An IPv4-mapped IPv6 block of /96 or longer is read as the IPv4 block it maps (so it matches
/// the unmapped addresses reports carry). Host bits set below the prefix are ignored.
pub fn parse_block(text: &str) -> Result<Block, String> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{text:?} is not an IP address or CIDR"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u32 = match len {
        None => max,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if n <= max && !l.starts_with('+') => n,
            _ => return Err(format!("{text:?} has a prefix length outside 0-{max}")),
        },
    };
    Ok(match ip {
        IpAddr::V4(v4) => v4_block(u32::from(v4), len),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) if len >= 96 => v4_block(u32::from(v4), len - 96),
            _ => {
                let a = u128::from(v6);
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                Block::V6(a & mask, (a & mask) | !mask)
            }
        },
    })
}

fn v4_block(a: u32, len: u32) -> Block {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Block::V4(a & mask, (a & mask) | !mask)
}

impl CidrSet {
    pub fn from_blocks(blocks: impl IntoIterator<Item = Block>) -> Self {
        let (mut v4, mut v6, mut entries) = (Vec::new(), Vec::new(), 0);
        for b in blocks {
            entries += 1;
            match b {
                Block::V4(s, e) => v4.push((s, e)),
                Block::V6(s, e) => v6.push((s, e)),
            }
        }
        CidrSet {
            v4: merge(v4),
            v6: merge(v6),
            entries,
        }
    }

    /// Number of entries given, before merging.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// True when `ip` lies in some block of its own family (IPv4-mapped read as IPv4; a
    /// family mismatch never matches, §4.3).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match unmap(ip) {
            IpAddr::V4(v4) => hit(&self.v4, u32::from(v4)),
            IpAddr::V6(v6) => hit(&self.v6, u128::from(v6)),
        }
    }

    /// A stable digest of the merged ranges, so a changed cidrsFile counts as a changed value
    /// on reload (§6.1). FNV-1a over the range bounds.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv1a::default();
        for (s, e) in &self.v4 {
            h.eat(&s.to_be_bytes());
            h.eat(&e.to_be_bytes());
        }
        h.eat(b"|");
        for (s, e) in &self.v6 {
            h.eat(&s.to_be_bytes());
            h.eat(&e.to_be_bytes());
        }
        h.finish()
    }
}

fn merge<T: Ord + Copy + One>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match out.last_mut() {
            // Overlapping or adjacent (last end + 1 == s) ranges fuse.
            Some(last) if s <= last.1 || last.1.succ() == Some(s) => {
                if e > last.1 {
                    last.1 = e;
                }
            }
            _ => out.push((s, e)),
        }
    }
    out
}

fn hit<T: Ord + Copy>(ranges: &[(T, T)], a: T) -> bool {
    // The last range starting at or before `a`.
    let i = ranges.partition_point(|(s, _)| *s <= a);
    i > 0 && ranges[i - 1].1 >= a
}

trait One: Sized {
    fn succ(self) -> Option<Self>;
}

impl One for u32 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl One for u128 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> CidrSet {
        CidrSet::from_blocks(items.iter().map(|s| parse_block(s).unwrap()))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_host_routes_and_families() {
        let s = set(&[
            "10.0.0.0/8",
            "192.0.2.7",
            "2001:db8::/32",
            "::ffff:198.51.100.0/120",
        ]);
        assert!(s.contains(ip("10.255.255.255")));
        assert!(!s.contains(ip("11.0.0.0")));
        assert!(s.contains(ip("192.0.2.7")));
        assert!(!s.contains(ip("192.0.2.8")));
        assert!(s.contains(ip("2001:db8:ffff::1")));
        assert!(s.contains(ip("198.51.100.9")), "mapped block read as IPv4");
        assert!(
            s.contains(ip("::ffff:10.1.2.3")),
            "mapped address read as IPv4"
        );
        // Family mismatch never matches.
        assert!(!set(&["0.0.0.0/0"]).contains(ip("2001:db8::1")));
        assert!(!set(&["::/0"]).contains(ip("10.0.0.1")));
        assert!(set(&["::/0"]).contains(ip("::1")));
        assert!(set(&["0.0.0.0/0"]).contains(ip("255.255.255.255")));
    }

    #[test]
    fn overlapping_and_adjacent_ranges_merge() {
        let s = set(&["10.0.0.0/9", "10.128.0.0/9", "10.1.0.0/16", "10.0.0.5"]);
        assert_eq!(s.v4, vec![(0x0a00_0000, 0x0aff_ffff)]);
        assert_eq!(s.len(), 4);
        assert!(!s.contains(ip("9.255.255.255")));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in [
            "10.0.0.0/33",
            "fe80::/129",
            "banana",
            "10.0.0.0/",
            "10.0.0.0/+8",
        ] {
            let e = parse_block(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn agrees_with_a_linear_scan() {
        let mut x = 0x1234_5678_u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let blocks: Vec<(u32, u32)> = (0..300)
            .map(|_| {
                let len = 8 + next() % 25;
                match v4_block(next(), len) {
                    Block::V4(s, e) => (s, e),
                    Block::V6(..) => unreachable!(),
                }
            })
            .collect();
        let s = CidrSet::from_blocks(blocks.iter().map(|(a, b)| Block::V4(*a, *b)));
        for _ in 0..5000 {
            let a = next();
            let linear = blocks.iter().any(|(s, e)| *s <= a && a <= *e);
            assert_eq!(s.contains(IpAddr::V4(a.into())), linear, "{a:#x}");
        }
    }
}
