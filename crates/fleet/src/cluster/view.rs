//! The instance's current view of ownership, shared between the keeper (which writes it) and
//! the service (which asks `owns` per report): held partitions with their epoch and trust.
//!
//! A held partition counts only until its trust runs out, checked at each question, so an
//! instance that was paused past its lease owns nothing from the moment it wakes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};

use super::partition_of;

/// Changes queued per subscriber; a slow subscriber is told how many it missed (Lagged).
const CHANGES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Claimed by compare-and-set: this instance judges the partition from now on.
    Claimed,
    /// Given up to balance the cluster (before the lease was written as free).
    Released,
    /// A renewal's compare-and-set failed: another instance took it over.
    Lost,
    /// Not renewed in time (the bucket was unreachable, or the process was paused).
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub partition: u32,
    pub epoch: u64,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Grant {
    pub epoch: u64,
    pub until: Instant,
}

pub(super) struct Shared {
    pub instance: String,
    pub partitions: u32,
    pub held: RwLock<BTreeMap<u32, Grant>>,
    /// The owner each partition's lease last named, as the keeper read it (may be stale).
    pub owners: RwLock<Vec<String>>,
    pub changes: broadcast::Sender<Change>,
    /// Asks the keeper to hand every lease back (the answer: how many it released).
    pub leave: mpsc::Sender<oneshot::Sender<usize>>,
    /// Set once this instance leaves: it says hello no more and claims nothing.
    pub leaving: AtomicBool,
    /// Set while this instance cannot serve its things (cut off from the broker): it hands its
    /// leases back, says goodbye and claims nothing until it is cleared.
    pub aside: AtomicBool,
}

/// A cheap handle on the view (clones share it). The keeper stops when the last is dropped.
#[derive(Clone)]
pub struct Ownership {
    pub(super) shared: Arc<Shared>,
}

impl Ownership {
    /// A view for `instance`; `leave` reaches its keeper (`hand_back`).
    pub(super) fn new(
        instance: &str,
        partitions: u32,
        leave: mpsc::Sender<oneshot::Sender<usize>>,
    ) -> Ownership {
        Ownership {
            shared: Arc::new(Shared {
                instance: instance.to_owned(),
                partitions,
                held: RwLock::new(BTreeMap::new()),
                owners: RwLock::new(vec![String::new(); partitions as usize]),
                changes: broadcast::channel(CHANGES).0,
                leave,
                leaving: AtomicBool::new(false),
                aside: AtomicBool::new(false),
            }),
        }
    }

    /// A graceful stop: this instance judges nothing from now on, and its keeper writes each
    /// held lease as free and says goodbye, so the others take the partitions over at their
    /// next look instead of after a whole lease. Waits at most `limit`; the number of leases
    /// handed back, or None when the keeper did not confirm in time (the leases then expire).
    pub async fn hand_back(&self, limit: Duration) -> Option<usize> {
        self.shared.leaving.store(true, Ordering::SeqCst);
        let (done, released) = oneshot::channel();
        let asked = async {
            self.shared.leave.send(done).await.ok()?;
            released.await.ok()
        };
        tokio::time::timeout(limit, asked).await.ok().flatten()
    }

    pub fn instance(&self) -> &str {
        &self.shared.instance
    }

    pub fn partition(&self, thing: &str) -> u32 {
        partition_of(thing, self.shared.partitions)
    }

    /// Whether this instance judges `thing` now.
    pub fn owns(&self, thing: &str) -> bool {
        self.epoch(self.partition(thing)).is_some()
    }

    /// The epoch of `partition`'s lease while this instance holds it and trusts it.
    pub fn epoch(&self, partition: u32) -> Option<u64> {
        let held = self.shared.held.read().unwrap_or_else(|e| e.into_inner());
        let grant = held.get(&partition)?;
        (Instant::now() < grant.until).then_some(grant.epoch)
    }

    /// The partitions held and trusted now, with their epochs.
    pub fn owned(&self) -> BTreeMap<u32, u64> {
        let now = Instant::now();
        let held = self.shared.held.read().unwrap_or_else(|e| e.into_inner());
        held.iter()
            .filter(|(_, g)| now < g.until)
            .map(|(p, g)| (*p, g.epoch))
            .collect()
    }

    /// The instance the lease of `partition` named when last read ("" when free or unknown).
    pub fn owner_hint(&self, partition: u32) -> String {
        let owners = self.shared.owners.read().unwrap_or_else(|e| e.into_inner());
        owners.get(partition as usize).cloned().unwrap_or_default()
    }

    /// Steps aside (true: the keeper hands every lease back at its next tick and claims none)
    /// or back in (false: it claims a share again after hearing the others for a renewal
    /// period, like a new member).
    pub fn step_aside(&self, aside: bool) {
        self.shared.aside.store(aside, Ordering::SeqCst);
    }

    /// Gains and losses from now on.
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.shared.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_grant_counts_only_until_its_trust_runs_out() {
        let view = Ownership::new("a", 8, mpsc::channel(1).0);
        let thing = "gw-1";
        let p = view.partition(thing);
        assert!(!view.owns(thing));
        let now = Instant::now();
        let mut held = view.shared.held.write().unwrap();
        held.insert(
            p,
            Grant {
                epoch: 3,
                until: now + Duration::from_secs(60),
            },
        );
        held.insert(
            (p + 1) % 8,
            Grant {
                epoch: 1,
                until: now,
            },
        );
        drop(held);
        assert!(view.owns(thing));
        assert_eq!(view.epoch(p), Some(3));
        assert_eq!(view.epoch((p + 1) % 8), None, "trust ran out: not owned");
        assert_eq!(view.owned(), BTreeMap::from([(p, 3)]));
    }
}
