//! The cluster store's records: load and commit by compare-and-set on the KV revision, the
//! relay of a commit's effects (`nats_relay.rs`) after it, and redone after a crash.
//!
//! A commit writes only the thing's record: its new state plus `relay`, the commit's effects on
//! the other buckets and the outbox (JetStream 2.9 has no multi-key transaction). The committer
//! then applies `relay` (every step idempotent) and marks the record `relayed`. A crash in
//! between leaves the mark unset: the next load, answer or commit of that thing, by any
//! handle, applies the relay again first.

use async_nats::jetstream::kv;

use super::nats::{CACHE_LIMIT, Js, Nats, backend};
use super::nats_kv::{self, Answer, Noted, Stored, Window, dec, enc, from_bytes, to_bytes};
use super::nats_relay::relay;
use super::{Commit, Loaded, Record, StoreError, StoredReport, ThingRecords};

/// A thing's statistical windows are carried this long in its record (two days).
const WINDOWS_KEPT_MS: u64 = 2 * 24 * 3600 * 1000;

/// The record of `thing` with its revision, `None` for a thing never committed.
pub(super) async fn fetch(js: &Js, thing: &str) -> Result<Option<(u64, Stored)>, StoreError> {
    let key = enc(thing);
    let what = format!("bucket {} key {key}", js.records.name);
    let entry = js
        .records
        .entry(&key)
        .await
        .map_err(|e| backend(&what, e))?;
    match entry.filter(|e| e.operation == kv::Operation::Put) {
        Some(e) => Ok(Some((e.revision, from_bytes(&what, &e.value)?))),
        None => Ok(None),
    }
}

/// The record of `thing`, its last commit's effects applied first if they were cut short.
async fn current(js: &Js, thing: &str) -> Result<Option<(u64, Stored)>, StoreError> {
    let Some((mut rev, mut s)) = fetch(js, thing).await? else {
        return Ok(None);
    };
    if !s.relayed
        && let Some(new_rev) = relay(js, thing, rev, &s).await?
    {
        (rev, s.relayed) = (new_rev, true);
    }
    Ok(Some((rev, s)))
}

/// The record a commit writes: the new state, the windows summed, the effects to relay.
pub(super) fn next(old: &Stored, c: &Commit) -> Stored {
    let mut windows = old.windows.clone();
    let mut samples: Vec<Window> = Vec::new();
    for x in &c.samples {
        let at = windows.iter().position(|w| {
            (w.profile.as_str(), w.behavior.as_str(), w.start_ms)
                == (x.profile.as_str(), x.behavior.as_str(), x.window_start_ms)
        });
        let at = at.unwrap_or_else(|| {
            windows.push(Window {
                profile: x.profile.clone(),
                behavior: x.behavior.clone(),
                start_ms: x.window_start_ms,
                value: 0.0,
            });
            windows.len() - 1
        });
        let w = &mut windows[at];
        w.value = if x.sum { w.value + x.value } else { x.value };
        samples.retain(|s| {
            (&s.profile, &s.behavior, s.start_ms) != (&w.profile, &w.behavior, w.start_ms)
        });
        samples.push(w.clone());
    }
    let newest = windows.iter().map(|w| w.start_ms).max().unwrap_or(0);
    windows.retain(|w| w.start_ms + WINDOWS_KEPT_MS >= newest);
    Stored {
        version: old.version + 1,
        last_report: c.record.last_report,
        states: c.record.states.clone(),
        witness: c.record.witness.clone(),
        windows,
        relay: nats_kv::Relay {
            answers: c.answers.iter().map(Answer::of).collect(),
            events: c.events.iter().map(Noted::of).collect(),
            touched: c.touched.clone(),
            samples,
        },
        relayed: false,
    }
}

fn loaded(s: &Stored) -> Loaded {
    Loaded {
        version: s.version,
        record: Record {
            last_report: s.last_report,
            states: s.states.clone(),
            witness: s.witness.clone(),
        },
    }
}

/// Writes one commit whose record was read at `current` (already checked against its
/// expected version); returns the record's final revision and value.
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
                let rev = relay(js, &c.thing, rev, &new).await?;
                let mut new = new;
                new.relayed = rev.is_some();
                return Ok((rev.unwrap_or(0), new));
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

impl ThingRecords for Nats {
    fn load(&mut self, thing: &str) -> Result<Loaded, StoreError> {
        if let Some((name, rev, s)) = self.fresh.take()
            && name == thing
        {
            let l = loaded(&s);
            self.remember(thing, rev, s);
            return Ok(l);
        }
        let (js, name) = (self.js.clone(), thing.to_string());
        let what = format!("bucket {} key {}", js.records.name, enc(thing));
        let got = self
            .bridge
            .run(&what, async move { current(&js, &name).await })?;
        let Some((rev, s)) = got else {
            self.cache.remove(thing);
            return Ok(Loaded::default());
        };
        let l = loaded(&s);
        self.remember(thing, rev, s);
        Ok(l)
    }

    /// Reads the record first (relaying it if a commit was cut short, so its answers are in
    /// `detect-fleet-answers` after), keeps it for the `load` that follows, then the answer.
    fn answer(&mut self, thing: &str, report_id: u64) -> Result<Option<StoredReport>, StoreError> {
        let (js, name) = (self.js.clone(), thing.to_string());
        let key = format!("{}.{report_id}", enc(thing));
        let what = format!("bucket {} key {key}", js.answers.name);
        let (record, found) = self.bridge.run(&what.clone(), async move {
            let record = current(&js, &name).await?;
            let got = js.answers.get(&key).await.map_err(|e| backend(&what, e))?;
            let found = match got {
                Some(b) => Some(from_bytes::<Answer>(&what, &b)?.stored()),
                None => None,
            };
            Ok((record, found))
        })?;
        self.fresh = record.map(|(rev, s)| (thing.to_string(), rev, s));
        Ok(found)
    }

    fn with_state(&mut self) -> Result<Vec<(String, Loaded)>, StoreError> {
        self.every_record(|s| !s.states.is_empty())
    }

    fn with_witness(&mut self) -> Result<Vec<(String, Loaded)>, StoreError> {
        self.every_record(|s| s.witness.is_some())
    }

    fn commit(&mut self, commits: &[Commit]) -> Result<(), StoreError> {
        self.fresh = None;
        // Cluster mode: an instance that lost (or stopped trusting) a thing's lease writes
        // nothing of it (docs/fleet.md "Fencing").
        if let Some(c) = self
            .fence
            .as_ref()
            .and_then(|owns| commits.iter().find(|c| !owns(&c.thing)))
        {
            tracing::info!(thing = %c.thing, "commit refused: this instance does not own the thing now");
            return Err(StoreError::Conflict {
                thing: c.thing.clone(),
                expected: c.expected,
            });
        }
        let js = self.js.clone();
        let owned = commits.to_vec();
        let cached: Vec<Option<(u64, Stored)>> = commits
            .iter()
            .map(|c| {
                let hit = self
                    .cache
                    .get(&c.thing)
                    .filter(|(_, s)| s.version == c.expected);
                hit.cloned()
            })
            .collect();
        let what = format!("bucket {} ({} commits)", js.records.name, commits.len());
        let done = self.bridge.run(&what, async move {
            // Every version checked before anything is written: a stale one writes nothing.
            let mut current = Vec::with_capacity(owned.len());
            for (c, hit) in owned.iter().zip(cached) {
                let now = match hit {
                    Some(hit) => Some(hit),
                    None => fetch(&js, &c.thing).await?,
                };
                if now.as_ref().map_or(0, |(_, s)| s.version) != c.expected {
                    return Err(StoreError::Conflict {
                        thing: c.thing.clone(),
                        expected: c.expected,
                    });
                }
                current.push(now);
            }
            let mut done = Vec::with_capacity(owned.len());
            for (c, now) in owned.iter().zip(current) {
                done.push((c.thing.clone(), write(&js, c, now).await?));
                super::nats_history::publish(&js, c).await?;
            }
            Ok(done)
        });
        match done {
            Ok(done) => {
                for (thing, (rev, s)) in done {
                    self.remember(&thing, rev, s);
                }
                Ok(())
            }
            Err(e) => {
                commits.iter().for_each(|c| {
                    self.cache.remove(&c.thing);
                });
                Err(e)
            }
        }
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        // Every commit is acknowledged by the servers (replicated) before `commit` returns.
        Ok(())
    }
}

impl Nats {
    fn remember(&mut self, thing: &str, rev: u64, s: Stored) {
        if self.cache.len() >= CACHE_LIMIT && !self.cache.contains_key(thing) {
            self.cache.clear();
        }
        if rev == 0 {
            self.cache.remove(thing);
        } else {
            self.cache.insert(thing.to_string(), (rev, s));
        }
    }

    fn every_record(
        &mut self,
        keep: fn(&Stored) -> bool,
    ) -> Result<Vec<(String, Loaded)>, StoreError> {
        let js = self.js.clone();
        let what = format!("bucket {}", js.records.name);
        self.bridge.run(&what.clone(), async move {
            let mut out = Vec::new();
            for r in nats_kv::values(&js.records, &js.client, ">").await? {
                let s: Stored = from_bytes(&format!("{what} key {}", r.key), &r.payload)?;
                if let (Some(name), true) = (dec(&r.key), keep(&s)) {
                    out.push((name, loaded(&s)));
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        })
    }
}
