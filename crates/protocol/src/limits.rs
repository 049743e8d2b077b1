//! The payload size limits (protocol doc §4, §7.1 item 16) and the deterministic policy that
//! chooses which list entries to keep when a report would exceed it. Pure arithmetic on entry
//! sizes measured by `measure.rs`; does not encode or log.
//!
//! Cut policy (security-relevant): the cut prefers what an unprivileged process cannot forge
//! or flood. Each socket list has its own priority order; entries of one class keep their
//! (sorted) list order:
//! - listening ports (TCP and UDP alike): ports below 1024 first (only a privileged process
//!   can bind them), then the others; within each, ports bound to a non-loopback address
//!   (a wildcard bind or another interface) before ports bound to loopback (interface `lo`);
//!   within each of those, the first entry of every distinct port number before a second
//!   entry of a number already taken. So 12 000 decoys on 127.0.0.1 never push a wildcard
//!   listener out, and one port on many interfaces never pushes other ports out.
//! - established connections: non-loopback remote addresses first, then loopback ones;
//!   within each, the first connection of every distinct remote IP before the others.
//!
//! The lists then share the budget in two rounds. Round 1: every list (TCP, UDP,
//! connections) takes the longest prefix of its order that fits `SECTION_SHARE` (a quarter)
//! of the budget, so a flood in one list never empties another. Round 2: what is left goes
//! to the rest of TCP, then UDP, then connections, in their orders, until the first entry
//! that does not fit. Kept entries go out in list order. `total` keeps the true count
//! (protocol doc §7.1 item 12) so the backend still sees how many entries exist.
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

/// The report cap: encoded reports are always strictly smaller than this many bytes (the
/// legacy AWS C agent's MAX_REPORT_SIZE), a margin under `MAX_PUBLISH_BYTES`. The encoder
/// cuts lists to stay under it; nothing else uses it.
pub const MAX_REPORT_BYTES: usize = 128_000;

/// The transport cap: AWS IoT Core drops PUBLISH payloads above 128 KiB (protocol doc §4,
/// §7.1 item 16). The agent refuses to publish more, the fleet rejects more as
/// `InvalidPayload`, and both size their MQTT packet limits from it.
pub const MAX_PUBLISH_BYTES: usize = 128 * 1024;

/// The part of the socket budget (1/`SECTION_SHARE`) that each list may always use in
/// round 1 of the cut.
const SECTION_SHARE: usize = 4;

/// Ports below this need privilege to bind (Linux default of
/// `net.ipv4.ip_unprivileged_port_start`).
pub(crate) const PRIVILEGED_BELOW: u16 = 1024;

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

/// Entries chosen to go out: ascending index sets into each list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    pub tcp: Vec<usize>,
    pub udp: Vec<usize>,
    pub connections: Vec<usize>,
    /// Items kept per custom metric, in name order (`custom_cut`); `None` keeps them all,
    /// a missing entry keeps none.
    pub custom: Option<Vec<usize>>,
}

impl Selection {
    pub fn all(tcp: usize, udp: usize, connections: usize) -> Self {
        Self {
            tcp: (0..tcp).collect(),
            udp: (0..udp).collect(),
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
        let list = |kept: &[usize], total| ListCut {
            kept: kept.len(),
            total,
        };
        let cut = Cut {
            tcp_ports: list(&self.tcp, tcp_total),
            udp_ports: list(&self.udp, udp_total),
            connections: list(&self.connections, conn_total),
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

/// What the port order needs to know of one listening port entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PortFacts {
    pub port: u16,
    /// Bound to a loopback address only (interface `lo`).
    pub loopback: bool,
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

/// What the orders are computed from, entry for entry with `Sizes`.
pub(crate) struct Facts<'a> {
    pub tcp: &'a [PortFacts],
    pub udp: &'a [PortFacts],
    pub remote_ips: &'a [IpAddr],
}

/// The selection of the two-round policy (module doc). One pass per round over the
/// entries: bounded by their number, no re-encoding.
pub(crate) fn plan(sizes: &Sizes<'_>, facts: &Facts<'_>) -> Selection {
    let fixed = sizes.base + 3 * sizes.slack_per_list;
    let mut budget = (MAX_REPORT_BYTES - 1).saturating_sub(fixed);
    let share = budget / SECTION_SHARE;
    let orders = [
        port_priority(facts.tcp),
        port_priority(facts.udp),
        connection_priority(facts.remote_ips),
    ];
    let lists = [sizes.tcp, sizes.udp, sizes.connections];
    let mut kept: [Vec<usize>; 3] = Default::default();
    // Round 1: each list up to its share.
    for ((order, list), kept) in orders.iter().zip(lists).zip(&mut kept) {
        let mut left = share;
        for &i in order {
            match list.get(i) {
                Some(&size) if size <= left => {
                    left -= size;
                    kept.push(i);
                }
                _ => break,
            }
        }
        budget -= share - left;
    }
    // Round 2: the rest in list order, up to the first entry that does not fit.
    'lists: for ((order, list), kept) in orders.iter().zip(lists).zip(&mut kept) {
        for &i in &order[kept.len()..] {
            match list.get(i) {
                Some(&size) if size <= budget => {
                    budget -= size;
                    kept.push(i);
                }
                _ => break 'lists,
            }
        }
    }
    let [mut tcp, mut udp, mut connections] = kept;
    for k in [&mut tcp, &mut udp, &mut connections] {
        k.sort_unstable();
    }
    Selection {
        tcp,
        udp,
        connections,
        custom: None,
    }
}

/// Indices of the port entries in keep order (module doc): by (port ≥ 1024, loopback,
/// port number already taken in this class), each class in list order.
pub(crate) fn port_priority(ports: &[PortFacts]) -> Vec<usize> {
    let mut seen = BTreeSet::new();
    let mut ranked: Vec<(bool, bool, bool, usize)> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let repeat = !seen.insert((p.loopback, p.port));
            (p.port >= PRIVILEGED_BELOW, p.loopback, repeat, i)
        })
        .collect();
    ranked.sort_unstable();
    ranked.into_iter().map(|(.., i)| i).collect()
}

/// Indices of the connections in keep order (module doc): non-loopback remotes first, then
/// by remote IP already taken, each class in list order (which is sorted).
pub(crate) fn connection_priority(remote_ips: &[IpAddr]) -> Vec<usize> {
    let mut seen = BTreeSet::new();
    let mut ranked: Vec<(bool, bool, usize)> = remote_ips
        .iter()
        .enumerate()
        .map(|(i, ip)| (ip.is_loopback(), !seen.insert(*ip), i))
        .collect();
    ranked.sort_unstable();
    ranked.into_iter().map(|(.., i)| i).collect()
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
