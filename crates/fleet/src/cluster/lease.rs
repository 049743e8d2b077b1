//! A partition's lease as stored in the KV bucket (key `partition.<n>`, JSON value) and the
//! keeper's pure choice of what to claim and release, given what it has seen and holds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// A lease value. `owner` "" is a released (free) partition. `epoch` grows by one each time
/// the owner changes and stays during renewals: (partition, epoch) names one ownership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub epoch: u64,
}

pub fn key(partition: u32) -> String {
    format!("partition.{partition}")
}

impl Lease {
    pub fn encode(&self) -> bytes::Bytes {
        // A struct of a string and a number always serializes.
        serde_json::to_vec(self).unwrap_or_default().into()
    }

    pub fn decode(key: &str, value: &[u8]) -> anyhow::Result<Lease> {
        serde_json::from_slice(value).with_context(|| {
            format!(
                "lease {key}: not a lease value: {:?}",
                String::from_utf8_lossy(value)
            )
        })
    }
}

/// What the keeper last saw of one partition's key.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// The key's revision, 0 when it has none (never written).
    pub revision: u64,
    /// Its value, None when there is none or it does not decode.
    pub lease: Option<Lease>,
    /// When this revision was first seen here (None: never looked yet).
    pub since: Option<Instant>,
}

impl Seen {
    /// Free to claim: never written, released, or unchanged for a whole lease (its owner
    /// stopped renewing). Not free while unread. A lease naming this instance that it does not
    /// hold waits like any other: it may be a write that lost a race (bucket.rs `first_after`)
    /// while the winner judges.
    pub fn claimable(&self, now: Instant, ttl: Duration) -> bool {
        let Some(since) = self.since else {
            return false;
        };
        match &self.lease {
            _ if self.revision == 0 => true,
            Some(lease) if lease.owner.is_empty() => true,
            _ => now.saturating_duration_since(since) >= ttl,
        }
    }
}

/// The partitions to claim and to release now: hold `ceil(partitions / members)`, claiming
/// claimable ones in an order rotated by `start` (instances start at different places) and
/// releasing the ones furthest along that order.
pub fn plan(
    seen: &[Seen],
    held: &BTreeMap<u32, u64>,
    members: usize,
    start: u32,
    now: Instant,
    ttl: Duration,
) -> (Vec<u32>, Vec<u32>) {
    let partitions = seen.len() as u32;
    let target = (partitions as usize).div_ceil(members.max(1));
    let order: Vec<u32> = (0..partitions)
        .map(|i| (start + i) % partitions.max(1))
        .collect();
    if held.len() > target {
        let release = order
            .iter()
            .rev()
            .filter(|p| held.contains_key(p))
            .take(held.len() - target)
            .copied()
            .collect();
        return (Vec::new(), release);
    }
    let claim = order
        .iter()
        .filter(|&&p| !held.contains_key(&p) && seen[p as usize].claimable(now, ttl))
        .take(target - held.len())
        .copied()
        .collect();
    (claim, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(owner: Option<&str>, revision: u64, age: Duration, now: Instant) -> Seen {
        Seen {
            revision,
            lease: owner.map(|o| Lease {
                owner: o.into(),
                epoch: 1,
            }),
            since: Some(now - age),
        }
    }

    #[test]
    fn claims_free_and_expired_up_to_a_fair_share() {
        let now = Instant::now();
        let ttl = Duration::from_secs(6);
        let s = vec![
            seen(None, 0, Duration::ZERO, now),
            seen(Some("b"), 5, Duration::from_secs(1), now),
            seen(Some("b"), 6, Duration::from_secs(7), now),
            seen(Some(""), 7, Duration::ZERO, now),
        ];
        let (claim, release) = plan(&s, &BTreeMap::new(), 2, 0, now, ttl);
        assert_eq!((claim, release), (vec![0, 2], vec![]));
        let (claim, _) = plan(&s, &BTreeMap::new(), 1, 1, now, ttl);
        assert_eq!(claim, vec![2, 3, 0], "the live lease of b is never claimed");
    }

    #[test]
    fn releases_what_exceeds_the_share_when_members_join() {
        let now = Instant::now();
        let s = vec![Seen::default(); 4];
        let held: BTreeMap<u32, u64> = (0..4).map(|p| (p, 1)).collect();
        let (claim, release) = plan(&s, &held, 2, 1, now, Duration::from_secs(6));
        assert!(claim.is_empty());
        assert_eq!(release, vec![0, 3]);
    }

    #[test]
    fn unread_keys_are_not_claimed_and_bad_values_are_errors() {
        assert!(!Seen::default().claimable(Instant::now(), Duration::ZERO));
        let e = Lease::decode("partition.3", b"nope").unwrap_err();
        assert!(format!("{e:#}").contains("partition.3"), "{e:#}");
    }
}
