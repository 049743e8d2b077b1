//! The keeper task: each tick it renews the leases it holds (compare-and-set on the revision
//! it last wrote), reads every lease, and claims or releases partitions toward a fair share.
//!
//! A renewal whose compare-and-set fails means another instance took the partition over: it
//! is dropped at once (`Lost`). Every claim and renewal is a compare-and-set that counts only
//! once `bucket::first_after` confirms it came first (nats-server 2.9 may accept two).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};

use super::lease::{self, Lease, Seen};
use super::members::Members;
use super::view::{Change, ChangeKind, Grant, Ownership, Shared};
use super::{Settings, bucket, partition_of};

/// Values kept per lease key (the tests read the history to check ownership never overlaps).
const HISTORY: i64 = 64;
/// The bound on each JetStream request (a lease read or write).
const REQUEST: Duration = Duration::from_secs(2);

struct Held {
    epoch: u64,
    revision: u64,
    /// When the last successful write of this lease was sent.
    renewed: Instant,
    /// An `Expired` change was sent and no renewal has succeeded since.
    expired: bool,
}

struct Keeper {
    client: async_nats::Client,
    kv: kv::Store,
    settings: Settings,
    members: Members,
    seen: Vec<Seen>,
    held: BTreeMap<u32, Held>,
    started: Instant,
    start: u32,
    /// `Ownership::hand_back` asks here.
    leave: mpsc::Receiver<oneshot::Sender<usize>>,
    /// Stepped aside (`Ownership::step_aside`): holds nothing, claims nothing.
    aside: bool,
}

pub async fn spawn(client: async_nats::Client, settings: Settings) -> anyhow::Result<Ownership> {
    settings.check()?;
    let mut js = jetstream::new(client.clone());
    js.set_timeout(REQUEST);
    let kv = bucket::open(&js, &settings.bucket, settings.replicas, HISTORY).await?;
    let members = Members::listen(&client, &settings.instance, &settings.bucket).await?;
    let (leave_tx, leave) = mpsc::channel(1);
    let ownership = Ownership::new(&settings.instance, settings.partitions, leave_tx);
    let keeper = Keeper {
        client,
        kv,
        start: partition_of(&settings.instance, settings.partitions),
        seen: vec![Seen::default(); settings.partitions as usize],
        settings,
        members,
        held: BTreeMap::new(),
        started: Instant::now(),
        leave,
        aside: false,
    };
    if !keeper.settings.observer {
        // On a timer of its own: renewing and claiming many leases through a slow cluster can
        // take a tick longer than a lease, and the others would then forget this member.
        let (members, client) = (keeper.members.clone(), keeper.client.clone());
        let (bucket, every) = (
            keeper.settings.bucket.clone(),
            keeper.settings.renew_every(),
        );
        let alive = Arc::downgrade(&ownership.shared);
        tokio::spawn(async move {
            while let Some(shared) = alive.upgrade() {
                if shared.leaving.load(Ordering::SeqCst) {
                    break;
                }
                let aside = shared.aside.load(Ordering::SeqCst);
                drop(shared);
                if !aside {
                    members.hello(&client, &bucket).await;
                }
                tokio::time::sleep(every).await;
            }
        });
    }
    tokio::spawn(keeper.run(Arc::downgrade(&ownership.shared)));
    Ok(ownership)
}

impl Keeper {
    async fn run(mut self, shared: Weak<Shared>) {
        let every = self.settings.renew_every();
        let mut tick = tokio::time::interval(every / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let asked = tokio::select! {
                _ = tick.tick() => None,
                asked = self.leave.recv() => asked,
            };
            let Some(shared) = shared.upgrade() else {
                break;
            };
            if let Some(done) = asked {
                let released = self.hand_back(&shared).await;
                let _ = done.send(released);
                break;
            }
            if self.settings.observer {
                self.read(&shared).await;
                continue;
            }
            if self.step_aside(&shared).await {
                self.read(&shared).await;
                continue;
            }
            self.renew(&shared).await;
            self.note_expired(&shared);
            self.read(&shared).await;
            // One renewal period to hear the others before taking a share.
            if self.started.elapsed() < every {
                continue;
            }
            let held = self.held.iter().map(|(p, h)| (*p, h.epoch)).collect();
            let members = self.members.count(self.settings.ttl);
            let (claim, release) = lease::plan(
                &self.seen,
                &held,
                members,
                self.start,
                Instant::now(),
                self.settings.ttl,
            );
            for p in release {
                self.release(&shared, p).await;
            }
            for p in claim {
                self.claim(&shared, p).await;
            }
        }
        tracing::debug!("cluster: keeper of {} stops", self.settings.instance);
    }

    fn lease(&self, epoch: u64) -> Lease {
        Lease {
            owner: self.settings.instance.clone(),
            epoch,
        }
    }

    fn grant(&self, shared: &Shared, p: u32, grant: Option<Grant>) {
        let mut held = shared.held.write().unwrap_or_else(|e| e.into_inner());
        match grant {
            Some(g) => held.insert(p, g),
            None => held.remove(&p),
        };
    }

    fn tell(shared: &Shared, partition: u32, epoch: u64, kind: ChangeKind) {
        tracing::info!("cluster: partition {partition} epoch {epoch}: {kind:?}");
        // No subscriber is fine: the view itself is always current.
        let _ = shared.changes.send(Change {
            partition,
            epoch,
            kind,
        });
    }

    /// Our lease of `p` at `epoch` was written (claimed or renewed) as `revision`, sent at
    /// `sent`: held, judged until `sent` plus the trust, and seen.
    fn hold(&mut self, shared: &Shared, p: u32, epoch: u64, revision: u64, sent: Instant) {
        self.held.insert(
            p,
            Held {
                epoch,
                revision,
                renewed: sent,
                expired: false,
            },
        );
        let until = sent + self.settings.trust();
        self.grant(shared, p, Some(Grant { epoch, until }));
        self.saw(p, revision, self.lease(epoch));
    }

    fn saw(&mut self, p: u32, revision: u64, lease: Lease) {
        self.seen[p as usize] = Seen {
            revision,
            lease: Some(lease),
            since: Some(Instant::now()),
        };
    }

    /// Renews each lease due (a third of the lease since its last write, or trust run out).
    async fn renew(&mut self, shared: &Shared) {
        let every = self.settings.renew_every();
        let due: Vec<(u32, u64, u64)> = self
            .held
            .iter()
            .filter(|(_, h)| h.renewed.elapsed() >= every)
            .map(|(p, h)| (*p, h.epoch, h.revision))
            .collect();
        let writes = due.iter().map(|&(p, epoch, revision)| {
            let (kv, value) = (&self.kv, self.lease(epoch).encode());
            async move {
                let sent = Instant::now();
                (sent, kv.update(lease::key(p), value, revision).await)
            }
        });
        let results = join_all(writes).await;
        for ((p, epoch, revision), (sent, result)) in due.into_iter().zip(results) {
            match result {
                Ok(new) if !bucket::first_after(&self.kv, &lease::key(p), revision, new).await => {
                    self.held.remove(&p);
                    self.grant(shared, p, None);
                    Self::tell(shared, p, epoch, ChangeKind::Lost);
                }
                Ok(new) => {
                    let regained = self.held.get(&p).is_some_and(|h| h.expired);
                    self.hold(shared, p, epoch, new, sent);
                    if regained {
                        Self::tell(shared, p, epoch, ChangeKind::Claimed);
                    }
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    tracing::info!(
                        "cluster: lease of partition {p} lost: compare-and-set on revision \
                         {revision} failed (another instance took it over)"
                    );
                    self.held.remove(&p);
                    self.grant(shared, p, None);
                    Self::tell(shared, p, epoch, ChangeKind::Lost);
                }
                Err(e) => tracing::warn!("cluster: renewing the lease of partition {p}: {e}"),
            }
        }
    }

    /// Tells once about each held lease whose trust ran out (the view already ignores it).
    fn note_expired(&mut self, shared: &Shared) {
        let trust = self.settings.trust();
        for (p, h) in &mut self.held {
            if !h.expired && h.renewed.elapsed() >= trust {
                h.expired = true;
                Self::tell(shared, *p, h.epoch, ChangeKind::Expired);
            }
        }
    }

    /// Reads every lease (concurrently, each bounded); a failed read keeps what was seen.
    async fn read(&mut self, shared: &Shared) {
        let reads = (0..self.settings.partitions).map(|p| self.kv.entry(lease::key(p)));
        let results = join_all(reads).await;
        for (p, result) in results.into_iter().enumerate() {
            let seen = &mut self.seen[p];
            let (revision, lease) = match result {
                Ok(Some(entry)) => {
                    let lease = Lease::decode(&entry.key, &entry.value)
                        .inspect_err(|e| tracing::warn!("cluster: {e:#}"))
                        .ok();
                    (entry.revision, lease)
                }
                Ok(None) => (0, None),
                Err(e) => {
                    tracing::debug!("cluster: reading lease {p}: {e}");
                    continue;
                }
            };
            if seen.since.is_none() || seen.revision != revision {
                *seen = Seen {
                    revision,
                    lease,
                    since: Some(Instant::now()),
                };
            }
        }
        let mut owners = shared.owners.write().unwrap_or_else(|e| e.into_inner());
        for (owner, seen) in owners.iter_mut().zip(&self.seen) {
            *owner = seen
                .lease
                .as_ref()
                .map(|l| l.owner.clone())
                .unwrap_or_default();
        }
    }

    async fn claim(&mut self, shared: &Shared, p: u32) {
        let seen = &self.seen[p as usize];
        let epoch = match &seen.lease {
            Some(l) => l.epoch + 1,
            // Epochs grow by one per owner change, so one beyond the revision is new.
            None => seen.revision + 1,
        };
        let (value, key, revision) = (self.lease(epoch).encode(), lease::key(p), seen.revision);
        let sent = Instant::now();
        let result = if revision == 0 {
            self.kv.create(&key, value).await.map_err(|e| e.to_string())
        } else {
            self.kv
                .update(&key, value, revision)
                .await
                .map_err(|e| e.to_string())
        };
        match result {
            Ok(new) if !bucket::first_after(&self.kv, &lease::key(p), revision, new).await => {}
            Ok(new) => {
                self.hold(shared, p, epoch, new, sent);
                Self::tell(shared, p, epoch, ChangeKind::Claimed);
            }
            Err(e) => {
                tracing::debug!("cluster: claiming partition {p} at revision {revision}: {e}")
            }
        }
    }

    /// Follows `Shared::aside`: on stepping aside hands every lease back; on stepping back in
    /// starts over like a new member. True while aside.
    async fn step_aside(&mut self, shared: &Shared) -> bool {
        let aside = shared.aside.load(Ordering::SeqCst);
        match (self.aside, aside) {
            (false, true) => {
                let released = self.hand_back(shared).await;
                tracing::warn!(
                    "cluster: {} stepped aside: {released} leases handed back",
                    self.settings.instance
                );
            }
            (true, false) => {
                self.started = Instant::now();
                tracing::info!("cluster: {} takes a share again", self.settings.instance);
            }
            _ => {}
        }
        self.aside = aside;
        aside
    }

    /// Leaving: stops judging every held partition at once, writes each lease as free (all
    /// together, each bounded by the request timeout) and says goodbye; the number written.
    async fn hand_back(&mut self, shared: &Shared) -> usize {
        let held = std::mem::take(&mut self.held);
        let writes = held.iter().map(|(&p, h)| self.let_go(shared, p, h).1);
        let results = join_all(writes).await;
        let mut released = 0;
        for (p, result) in held.keys().zip(results) {
            match result {
                Ok(_) => released += 1,
                Err(e) => tracing::warn!(
                    "cluster: handing back partition {p}: {e} (it is taken over when its lease runs out)"
                ),
            }
        }
        self.members.bye(&self.client, &self.settings.bucket).await;
        released
    }

    /// Stops judging `p` first, then writes its lease as free.
    async fn release(&mut self, shared: &Shared, p: u32) {
        let Some(held) = self.held.remove(&p) else {
            return;
        };
        let (free, write) = self.let_go(shared, p, &held);
        match write.await {
            Ok(new) => self.saw(p, new, free),
            Err(e) => tracing::debug!("cluster: releasing partition {p}: {e}"),
        }
    }

    /// Stops judging `p` (its grant withdrawn, `Released` told) and returns its lease as free
    /// with the compare-and-set on `held`'s revision that writes it.
    fn let_go(
        &self,
        shared: &Shared,
        p: u32,
        held: &Held,
    ) -> (
        Lease,
        impl std::future::Future<Output = Result<u64, kv::UpdateError>> + '_,
    ) {
        self.grant(shared, p, None);
        Self::tell(shared, p, held.epoch, ChangeKind::Released);
        let free = Lease {
            owner: String::new(),
            epoch: held.epoch,
        };
        let write = self.kv.update(lease::key(p), free.encode(), held.revision);
        (free, write)
    }
}
