//! The payload size limit (protocol doc §4, §7.1 item 16) and the deterministic policy that
//! chooses which list entries to keep when a report would exceed it. Pure arithmetic on entry
//! sizes measured by `encode.rs`; does not encode or log.
//!
//! Cut policy (security-relevant): entries are taken in one priority order and the longest
//! prefix of that order that fits is kept. The order is: all listening TCP ports (sorted),
//! then all listening UDP ports (sorted), then one established connection per distinct remote
//! IP (the first of each IP in sorted order), then the remaining connections in sorted order.
//! So an unexpected listener is never hidden by connections, and a connection to an unknown
//! IP is never hidden behind thousands of connections to a known one. `total` keeps the true
//! count (protocol doc §7.1 item 12) so the backend still sees how many entries exist.
//!
//! Custom metric lists are cut in a separate step that runs first (`custom_cut.rs`); the
//! socket policy above then runs on the bytes it leaves. `number` metrics, metric names and
//! the one-element array around each value are never cut (they are part of the fixed base).
//! List items (`number_list`, `string_list`, `ip_list`) may use every byte the socket lists
//! leave, and at least `CUSTOM_SHARE` (32 000 bytes) when the sockets need the rest; within
//! that budget the lists take one item each in turn in metric name order, each keeping a
//! prefix of its own order. So no list, however long, makes a report unpublishable or
//! hides the sockets, and a big socket table never hides every custom item.

use std::collections::BTreeSet;
use std::net::IpAddr;

/// AWS IoT Core rejects PUBLISH payloads over 128 KB (protocol doc §4); encoded reports are
/// always strictly smaller than this many bytes (the legacy AWS C agent's MAX_REPORT_SIZE).
pub const MAX_PAYLOAD_BYTES: usize = 128_000;

/// How many entries of one list went out, of how many the model held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCut {
    pub kept: usize,
    pub total: usize,
}

/// What a size cut dropped, per list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub tcp_ports: ListCut,
    pub udp_ports: ListCut,
    pub connections: ListCut,
    /// Items of all custom metric lists together.
    pub custom_items: ListCut,
}

/// Entries chosen to go out: port lists keep a prefix, connections a sorted index set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    pub tcp: usize,
    pub udp: usize,
    pub connections: Vec<usize>,
    /// Items kept per custom metric, in name order (`custom_cut`); `None` keeps them all,
    /// a missing entry keeps none.
    pub custom: Option<Vec<usize>>,
}

impl Selection {
    pub fn all(tcp: usize, udp: usize, connections: usize) -> Self {
        Self {
            tcp,
            udp,
            connections: (0..connections).collect(),
            custom: None,
        }
    }

    /// No socket entries (custom items all kept).
    pub fn none() -> Self {
        Self::all(0, 0, 0)
    }

    /// No list entries at all: the fixed base that every cut keeps.
    pub fn base() -> Self {
        Self {
            custom: Some(Vec::new()),
            ..Self::none()
        }
    }

    /// How many items of the `i`-th custom metric (name order) go out.
    pub fn custom_kept(&self, i: usize) -> usize {
        match &self.custom {
            None => usize::MAX,
            Some(kept) => kept.get(i).copied().unwrap_or(0),
        }
    }

    /// `None` when everything is kept.
    pub fn cut(
        &self,
        tcp_total: usize,
        udp_total: usize,
        conn_total: usize,
        custom_items: ListCut,
    ) -> Option<Cut> {
        let cut = Cut {
            tcp_ports: ListCut {
                kept: self.tcp,
                total: tcp_total,
            },
            udp_ports: ListCut {
                kept: self.udp,
                total: udp_total,
            },
            connections: ListCut {
                kept: self.connections.len(),
                total: conn_total,
            },
            custom_items,
        };
        let whole = |l: ListCut| l.kept == l.total;
        if whole(cut.tcp_ports)
            && whole(cut.udp_ports)
            && whole(cut.connections)
            && whole(cut.custom_items)
        {
            None
        } else {
            Some(cut)
        }
    }
}

/// Measured sizes: `base` is the report with all three lists empty; each entry size includes
/// its separator; `slack` covers growth of one list's length header (CBOR: at most 4 bytes).
pub(crate) struct Sizes<'a> {
    pub base: usize,
    pub slack_per_list: usize,
    pub tcp: &'a [usize],
    pub udp: &'a [usize],
    pub connections: &'a [usize],
}

/// The longest prefix of the priority order (module doc) whose size stays under the limit.
/// One pass over the entries: bounded by their number, no re-encoding.
pub(crate) fn plan(sizes: &Sizes<'_>, remote_ips: &[IpAddr]) -> Selection {
    let fixed = sizes.base + 3 * sizes.slack_per_list;
    let mut budget = (MAX_PAYLOAD_BYTES - 1).saturating_sub(fixed);
    let mut take = |size: usize| -> bool {
        if size <= budget {
            budget -= size;
            true
        } else {
            false
        }
    };
    let mut sel = Selection::none();
    sel.tcp = sizes.tcp.iter().take_while(|s| take(**s)).count();
    if sel.tcp < sizes.tcp.len() {
        return sel;
    }
    sel.udp = sizes.udp.iter().take_while(|s| take(**s)).count();
    if sel.udp < sizes.udp.len() {
        return sel;
    }
    for i in connection_priority(remote_ips) {
        match sizes.connections.get(i) {
            Some(size) if take(*size) => sel.connections.push(i),
            _ => break,
        }
    }
    sel.connections.sort_unstable();
    sel
}

/// Indices of the connections in keep order: the first connection of each distinct remote IP
/// (in list order, which is sorted), then the others in list order.
pub(crate) fn connection_priority(remote_ips: &[IpAddr]) -> Vec<usize> {
    let mut seen = BTreeSet::new();
    let (mut first, mut rest) = (Vec::new(), Vec::new());
    let mut previous = None;
    for (i, ip) in remote_ips.iter().enumerate() {
        // Sorted lists repeat an IP in a row: no set lookup for those.
        let repeat = previous == Some(ip);
        previous = Some(ip);
        if !repeat && seen.insert(*ip) {
            first.push(i);
        } else {
            rest.push(i);
        }
    }
    first.extend(rest);
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn everything_kept_when_it_fits() {
        let ips = [ip("10.0.0.1"), ip("10.0.0.2")];
        let sizes = Sizes {
            base: 100,
            slack_per_list: 4,
            tcp: &[10, 10],
            udp: &[10],
            connections: &[50, 50],
        };
        let sel = plan(&sizes, &ips);
        assert_eq!(sel, Selection::all(2, 1, 2));
        let no_custom = ListCut { kept: 0, total: 0 };
        assert_eq!(sel.cut(2, 1, 2, no_custom), None);
    }

    #[test]
    fn one_connection_per_ip_before_more() {
        // 1000 connections to 10.0.0.1 then one to 10.0.0.9: the last one must survive.
        let mut ips = vec![ip("10.0.0.1"); 1000];
        ips.push(ip("10.0.0.9"));
        let conn = vec![1000; ips.len()];
        let sizes = Sizes {
            base: 500,
            slack_per_list: 4,
            tcp: &[20; 3],
            udp: &[20; 2],
            connections: &conn,
        };
        let sel = plan(&sizes, &ips);
        assert_eq!((sel.tcp, sel.udp), (3, 2));
        assert!(sel.connections.contains(&0) && sel.connections.contains(&1000));
        let kept = sel.connections.len();
        assert!(kept > 2 && kept < 128, "{kept}");
        // Ascending order, the prefix of the remaining ones.
        assert_eq!(
            &sel.connections[..kept - 1],
            (0..kept - 1).collect::<Vec<_>>()
        );
        let cut = sel.cut(3, 2, 1001, ListCut { kept: 0, total: 0 }).unwrap();
        assert_eq!(cut.connections, ListCut { kept, total: 1001 });
        assert_eq!(cut.tcp_ports, ListCut { kept: 3, total: 3 });
    }

    #[test]
    fn ports_come_before_connections() {
        let tcp = vec![10_000; 20];
        let sizes = Sizes {
            base: 100,
            slack_per_list: 4,
            tcp: &tcp,
            udp: &[10],
            connections: &[10],
        };
        let sel = plan(&sizes, &[ip("::1")]);
        assert_eq!(sel.tcp, 12);
        assert_eq!((sel.udp, sel.connections.len()), (0, 0));
    }

    #[test]
    fn priority_order() {
        let ips = [
            ip("1.1.1.1"),
            ip("1.1.1.1"),
            ip("2.2.2.2"),
            ip("::1"),
            ip("::1"),
        ];
        assert_eq!(connection_priority(&ips), [0, 2, 3, 1, 4]);
    }
}
