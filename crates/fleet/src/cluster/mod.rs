//! Cluster mode's ownership of things (issue #20 item 2): things hash into a fixed number of
//! partitions, each judged by the one instance holding its lease in a JetStream KV bucket.
//!
//! `spawn` starts the keeper task (claims, renews and releases leases, see keeper.rs) and
//! returns an `Ownership`: `owns(thing)` is a cheap look at the current view, `epoch` the
//! partition's lease epoch (a fencing number for the store's commits), `changes` a stream of
//! gains and losses. docs/fleet.md "Cluster mode: who judges which thing" tells the design.

pub mod bucket;
pub mod forward;
pub mod held;
mod keeper;
pub mod lease;
mod members;
pub mod probe;
pub mod view;

use std::time::Duration;

pub use view::Ownership;

/// The default number of partitions (fixed for the life of a cluster: every instance must use
/// the same number, or two would disagree on a thing's partition).
pub const DEFAULT_PARTITIONS: u32 = 64;
/// The default lease bucket.
pub const DEFAULT_BUCKET: &str = "detect-fleet-leases";

/// How a cluster member takes part: its name, the partitions and the lease timing.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This instance's name, unique in the cluster (a lease's owner).
    pub instance: String,
    pub partitions: u32,
    pub bucket: String,
    /// Copies of the lease bucket (3 on a three-node cluster).
    pub replicas: usize,
    /// A lease not renewed for this long (as an observer sees it) may be taken over.
    pub ttl: Duration,
    /// Only read the leases (to forward reports): never claim, never count as a member.
    pub observer: bool,
}

impl Settings {
    /// Defaults: 64 partitions, a 6 s lease (a killed instance's partitions are taken over
    /// after 6 to 8 s), 3 replicas.
    pub fn new(instance: &str) -> Settings {
        Settings {
            instance: instance.to_owned(),
            partitions: DEFAULT_PARTITIONS,
            bucket: DEFAULT_BUCKET.to_owned(),
            replicas: 3,
            ttl: Duration::from_secs(6),
            observer: false,
        }
    }

    /// The instance name is a subject token; partitions and the lease within reason.
    pub fn check(&self) -> anyhow::Result<()> {
        let name = &self.instance;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            anyhow::bail!("cluster instance name {name:?}: use letters, digits, '-' and '_' only");
        }
        if !(1..=4096).contains(&self.partitions) {
            anyhow::bail!(
                "cluster partitions = {}: must be 1 to 4096",
                self.partitions
            );
        }
        if self.ttl < Duration::from_secs(1) {
            anyhow::bail!("cluster lease {:?}: must be at least 1 s", self.ttl);
        }
        Ok(())
    }

    /// A lease is renewed this often (a third of the lease).
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// How long the owner trusts its lease after sending a renewal that succeeded: the lease
    /// less a sixth, so an observer's takeover (a full lease after it saw that renewal) always
    /// comes after the owner stopped judging, even with some clock rate error.
    pub fn trust(&self) -> Duration {
        self.ttl - self.ttl / 6
    }
}

/// The partition of `thing`: FNV-1a (64 bit) of the name's UTF-8 bytes, modulo `partitions`.
/// Stable across versions and machines (documented in docs/fleet.md; changing it would move
/// every thing at an upgrade).
pub fn partition_of(thing: &str, partitions: u32) -> u32 {
    (detect::hash::fnv1a(thing.as_bytes()) % u64::from(partitions.max(1))) as u32
}

/// Opens (or creates) the lease bucket and starts the keeper on `client`.
pub async fn spawn(client: async_nats::Client, settings: Settings) -> anyhow::Result<Ownership> {
    keeper::spawn(client, settings).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        // FNV-1a 64 of "" is the offset basis; of "a" the published test vector.
        assert_eq!(
            partition_of("", 1 << 31),
            (0xcbf2_9ce4_8422_2325u64 % (1 << 31)) as u32
        );
        assert_eq!(
            partition_of("a", 1 << 31),
            (0xaf63_dc4c_8601_ec8cu64 % (1 << 31)) as u32
        );
        let mut counts = [0u32; 8];
        for i in 0..8000 {
            counts[partition_of(&format!("thing-{i}"), 8) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }
}
