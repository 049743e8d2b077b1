//! The cluster store's writes in flight: each commit's compare-and-set and relay run as a task
//! on the store's runtime, chained per thing; `sync` (or a read that needs them) awaits them.
//!
//! `commit` checks every version against what this handle knows (its overlay: the record it
//! last loaded or committed), spawns one task per commit and returns; the overlay holds the new
//! record at once, so this handle's `load` and `answer` see it. A second commit of the same
//! thing before `sync` waits for the first task's revision (one write per key at a time), commits
//! of different things go out together. `sync` awaits every task: a compare-and-set refused
//! there (another writer got in) is a `Conflict` naming the thing, any other failure a
//! `Backend` error, and the overlay forgets the things that failed so the next load reads
//! the cluster. Nothing the service acknowledges has not been written and replicated.

use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use tokio::task::JoinHandle;

use super::nats::{CACHE_LIMIT, Js, Nats, backend};
use super::nats_kv::{Stored, enc, to_bytes};
use super::nats_records::{fetch, next};
use super::nats_relay::{apply, relay};
use super::{Commit, StoreError};

/// A commit's task: the record's revision and value once written and relayed.
pub(super) type Task = JoinHandle<Result<(u64, Stored), StoreError>>;

/// At most this many things with writes in flight; one more waits for all of them first.
pub(super) const INFLIGHT_LIMIT: usize = 2_000;

/// Cluster mode drops cached records of things it does not own at most this often.
const PURGE_EVERY: Duration = Duration::from_secs(1);

impl Nats {
    /// Starts the write of `c`, whose expected version was checked against `start` (the
    /// record as this handle knows it, `None` for a thing never committed) or against the
    /// thing's task in flight, which it then follows.
    pub(super) fn spawn_write(&mut self, c: Commit, start: Option<(u64, Stored)>) {
        let js = self.js.clone();
        let before = self.inflight.remove(&c.thing);
        let timeout = self.bridge.timeout;
        let thing = c.thing.clone();
        let task = self.bridge.spawn(async move {
            let current = match before {
                Some(task) => Some(joined(&c.thing, task).await?),
                None => start,
            };
            let what = format!("bucket {} key {}", js.records.name, c.thing);
            let late = || backend(&what, format!("no answer from NATS within {timeout:?}"));
            let written = tokio::time::timeout(timeout, write(&js, &c, current))
                .await
                .map_err(|_| late())??;
            // The metric history right after the record (nats_history.rs): points, not the
            // report's outcome, so a failure here is logged and the report stands.
            let history = tokio::time::timeout(timeout, super::nats_history::publish(&js, &c));
            match history.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(thing = %c.thing, points = c.history.len(), error = %e, "metric history points not kept")
                }
                Err(_) => {
                    tracing::warn!(thing = %c.thing, points = c.history.len(), "metric history points not kept: no answer from NATS in time")
                }
            }
            Ok(written)
        });
        self.inflight.insert(thing, task);
    }

    /// Awaits every write in flight (`sync`, or a read of what commits write); the record of
    /// each one written is remembered with its revision, the first failure returned.
    pub(super) fn settle(&mut self) -> Result<(), StoreError> {
        let tasks: Vec<(String, Task)> = self.inflight.drain().collect();
        let mut failed = self.failed.take();
        if !tasks.is_empty() {
            let what = format!("bucket {} ({} writes)", self.js.records.name, tasks.len());
            // Every task has its own bound; this one only covers a lost runtime.
            let bound = self.bridge.timeout * 2;
            let done = self.bridge.run_within(&what, bound, async move {
                let mut done = Vec::with_capacity(tasks.len());
                for (thing, task) in tasks {
                    let got = joined(&thing, task).await;
                    done.push((thing, got));
                }
                Ok(done)
            });
            match done {
                Ok(done) => {
                    for (thing, got) in done {
                        match got {
                            Ok((rev, s)) => self.remember(&thing, rev, s),
                            Err(e) => {
                                self.cache.remove(&thing);
                                failed = Some(worse(failed, e));
                            }
                        }
                    }
                }
                Err(e) => {
                    self.cache.clear();
                    failed = Some(worse(failed, e));
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// `settle` for a read: a failure is kept for the next `sync` (the read itself goes on).
    pub(super) fn settle_for_read(&mut self) {
        if let Err(e) = self.settle() {
            tracing::warn!(error = %e, "cluster store: a write failed; the next sync reports it");
            self.failed = Some(e);
        }
    }

    /// Awaits the writes of `thing` only (a read of its answers).
    pub(super) fn settle_thing(&mut self, thing: &str) {
        let Some(task) = self.inflight.remove(thing) else {
            return;
        };
        let name = thing.to_string();
        let what = format!("bucket {} key {thing}", self.js.records.name);
        let bound = self.bridge.timeout * 2;
        let got = self
            .bridge
            .run_within(&what, bound, async move { joined(&name, task).await });
        match got {
            Ok((rev, s)) => self.remember(thing, rev, s),
            Err(e) => {
                self.cache.remove(thing);
                tracing::warn!(error = %e, "cluster store: a write failed; the next sync reports it");
                self.failed = Some(worse(self.failed.take(), e));
            }
        }
    }

    /// Cluster mode: forgets cached records of things this instance does not own now (their
    /// next owner may change them), at most once a `PURGE_EVERY`.
    pub(super) fn purge_unowned(&mut self) {
        let Some(owns) = self.fence.clone() else {
            return;
        };
        if self.purged.elapsed() < PURGE_EVERY {
            return;
        }
        self.purged = Instant::now();
        let inflight = &self.inflight;
        let before = self.cache.len();
        self.cache
            .retain(|thing, _| inflight.contains_key(thing) || owns(thing));
        let dropped = before - self.cache.len();
        if dropped > 0 {
            tracing::debug!(
                dropped,
                "cluster store: cached records of things owned elsewhere dropped"
            );
        }
    }
}

impl Nats {
    /// Whether this handle's cached record of `thing` is the truth: its own write is in
    /// flight, or (cluster mode) it owns the thing, which no other instance then writes.
    pub(super) fn knows(&self, thing: &str) -> bool {
        self.inflight.contains_key(thing) || self.fence.as_ref().is_some_and(|owns| owns(thing))
    }

    /// The records of `things`, read together.
    pub(super) fn read_all(
        &mut self,
        things: Vec<String>,
    ) -> Result<Vec<Option<(u64, Stored)>>, StoreError> {
        let js = self.js.clone();
        let what = format!("bucket {} ({} keys)", js.records.name, things.len());
        self.bridge.run(&what, async move {
            let tasks: Vec<_> = things
                .into_iter()
                .map(|t| {
                    let js = js.clone();
                    tokio::spawn(async move { fetch(&js, &t).await })
                })
                .collect();
            let mut out = Vec::with_capacity(tasks.len());
            for t in tasks {
                out.push(t.await.map_err(|e| backend("record read", e))??);
            }
            Ok(out)
        })
    }

    pub(super) fn remember(&mut self, thing: &str, rev: u64, s: Stored) {
        if rev == 0 {
            self.cache.remove(thing);
        } else {
            self.overlay(thing, s);
            if let Some(e) = self.cache.get_mut(thing) {
                e.0 = rev;
            }
        }
    }

    /// Keeps `s` as this handle's view of `thing` (revision 0 until its write is done).
    pub(super) fn overlay(&mut self, thing: &str, s: Stored) {
        if self.cache.len() >= CACHE_LIMIT && !self.cache.contains_key(thing) {
            let inflight = &self.inflight;
            let victim = self
                .cache
                .keys()
                .find(|k| !inflight.contains_key(*k))
                .cloned();
            if let Some(v) = victim {
                self.cache.remove(&v);
                self.evicted += 1;
                if self.evicted.is_power_of_two() || self.evicted.is_multiple_of(100_000) {
                    tracing::info!(
                        evicted = self.evicted,
                        limit = CACHE_LIMIT,
                        "cluster store: record cache full, records evicted"
                    );
                }
            }
        }
        self.cache.insert(thing.to_string(), (0, s));
    }
}

/// Writes one commit whose record was read at `current` (already checked against its
/// expected version), relays it and marks it if it has events; returns the record's last known revision and
/// value. A mark refused (someone relayed it meanwhile) leaves the write's revision: the
/// next write against it is refused, reads the record and goes on if the version is the same.
async fn write(
    js: &Js,
    c: &Commit,
    mut current: Option<(u64, Stored)>,
) -> Result<(u64, Stored), StoreError> {
    let key = enc(&c.thing);
    let what = format!("bucket {} key {key}", js.records.name);
    let conflict = || StoreError::Conflict {
        thing: c.thing.clone(),
        expected: c.expected,
    };
    for _ in 0..5 {
        if let Some((rev, old)) = current.as_mut().filter(|(_, s)| !s.relayed)
            && let Some(new_rev) = relay(js, &c.thing, *rev, old).await?
        {
            (*rev, old.relayed) = (new_rev, true);
        }
        let old = current.as_ref().map(|(_, s)| s.clone()).unwrap_or_default();
        let new = next(&old, c);
        let written = match &current {
            Some((rev, _)) => js.records.update(&key, to_bytes(&new), *rev).await,
            None => js.records.create(&key, to_bytes(&new)).await.map_err(|e| {
                let wrong = e.kind() == kv::CreateErrorKind::AlreadyExists;
                let kind = if wrong {
                    kv::UpdateErrorKind::WrongLastRevision
                } else {
                    kv::UpdateErrorKind::Other
                };
                kv::UpdateError::with_source(kind, e)
            }),
        };
        match written {
            Ok(rev) => {
                // Marked only when it has events: appending an event again after the
                // outbox's history was pruned would send it again; the rest repeats itself.
                let marked = match new.relay.events.is_empty() {
                    true => apply(js, &c.thing, &new).await.map(|()| None)?,
                    false => relay(js, &c.thing, rev, &new).await?,
                };
                let mut new = new;
                new.relayed = true;
                return Ok((marked.unwrap_or(rev), new));
            }
            // Written meanwhile: a relay mark leaves the version (retry), a commit does not.
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                current = fetch(js, &c.thing).await?;
                let version = current.as_ref().map_or(0, |(_, s)| s.version);
                if version != c.expected {
                    return Err(conflict());
                }
            }
            Err(e) => return Err(backend(&what, e)),
        }
    }
    Err(conflict())
}

/// The error `sync` reports of two: a failure of the cluster before a conflict (cluster mode
/// goes on after a conflict, not after a failure).
fn worse(kept: Option<StoreError>, new: StoreError) -> StoreError {
    match kept {
        Some(k) if !matches!(k, StoreError::Conflict { .. }) => k,
        Some(k) if matches!(new, StoreError::Conflict { .. }) => k,
        _ => new,
    }
}

/// The outcome of `task`, a lost task (the runtime stopping) as a backend error.
async fn joined(thing: &str, task: Task) -> Result<(u64, Stored), StoreError> {
    match task.await {
        Ok(got) => got,
        Err(e) => Err(backend(&format!("write of thing {thing}"), e)),
    }
}
