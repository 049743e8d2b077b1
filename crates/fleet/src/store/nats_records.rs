//! The cluster store's records: load and commit by compare-and-set on the KV revision, the
//! relay of a commit's effects (`nats_relay.rs`) after it, and redone after a crash.
//!
//! A commit writes only the thing's record: its new state plus `relay`, the commit's effects on
//! the other buckets and the outbox (JetStream 2.9 has no multi-key transaction). The committer
//! then applies `relay` (every step idempotent) and, when the commit has events, marks the
//! record `relayed`. A crash in between leaves the mark unset: the next load, answer or commit
//! of that thing by a handle that does not know it, applies the relay again first (for a
//! commit without events that is all there is: applying it again writes the same values).

use async_nats::jetstream::kv;

use super::nats::{Js, Nats, backend};
use super::nats_kv::{self, Answer, Noted, Stored, Window, dec, enc, from_bytes};
use super::nats_pipeline::INFLIGHT_LIMIT;
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

/// Whether `report_id` is above the last report `s` accepted: its stored answer, if any, is
/// a rejection (an accepted one would be the last report), which the judge judges again
/// like a report never seen; only the last commit's are carried in the record.
fn above(s: &Stored, report_id: u64) -> bool {
    s.last_report.is_none_or(|(last, _)| report_id > last)
}

fn last_commit_answer(s: &Stored, thing: &str, report_id: u64) -> Option<StoredReport> {
    let r = &s.relay.answers;
    let a = r
        .iter()
        .find(|a| a.report_id == report_id && a.thing == thing);
    a.map(Answer::stored)
}

impl ThingRecords for Nats {
    fn load(&mut self, thing: &str) -> Result<Loaded, StoreError> {
        self.purge_unowned();
        if self.knows(thing)
            && let Some((_, s)) = self.cache.get(thing)
        {
            return Ok(loaded(s));
        }
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

    /// From the record this handle knows when the id is above its last report (no round
    /// trip in cluster mode); else reads the record (relaying it if a commit was cut short,
    /// so its answers are in `detect-fleet-answers` after), keeps it for the `load` that
    /// follows, then the answer.
    fn answer(&mut self, thing: &str, report_id: u64) -> Result<Option<StoredReport>, StoreError> {
        self.purge_unowned();
        if self.knows(thing)
            && let Some((_, s)) = self.cache.get(thing).filter(|(_, s)| above(s, report_id))
        {
            return Ok(last_commit_answer(s, thing, report_id));
        }
        self.settle_thing(thing);
        let (js, name) = (self.js.clone(), thing.to_string());
        let key = format!("{}.{report_id}", enc(thing));
        let what = format!("bucket {} key {key}", js.answers.name);
        let (record, found) = self.bridge.run(&what.clone(), async move {
            let record = current(&js, &name).await?;
            let found = match &record {
                None => None,
                Some((_, s)) if above(s, report_id) => last_commit_answer(s, &name, report_id),
                Some(_) => {
                    let got = js.answers.get(&key).await.map_err(|e| backend(&what, e))?;
                    match got {
                        Some(b) => Some(from_bytes::<Answer>(&what, &b)?.stored()),
                        None => None,
                    }
                }
            };
            Ok((record, found))
        })?;
        match record {
            Some((rev, s)) if self.fence.is_some() => self.remember(thing, rev, s),
            record => self.fresh = record.map(|(rev, s)| (thing.to_string(), rev, s)),
        }
        Ok(found)
    }

    fn with_state(&mut self) -> Result<Vec<(String, Loaded)>, StoreError> {
        self.every_record(|s| !s.states.is_empty())
    }

    fn with_witness(&mut self) -> Result<Vec<(String, Loaded)>, StoreError> {
        self.every_record(|s| s.witness.is_some())
    }

    /// Checks every version against what this handle knows (reading the records it does not
    /// know, together), then starts the writes (`nats_pipeline.rs`): a stale version found
    /// here writes nothing; one found by the compare-and-set fails the next `sync`.
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
        self.purge_unowned();
        if self.inflight.len() + commits.len() > INFLIGHT_LIMIT {
            self.settle_for_read();
        }
        let conflict = |c: &Commit| StoreError::Conflict {
            thing: c.thing.clone(),
            expected: c.expected,
        };
        // What each commit is written against: the record known here, or read below.
        let mut known: Vec<Option<Option<(u64, Stored)>>> = Vec::with_capacity(commits.len());
        for c in commits {
            let cached = self.cache.get(&c.thing);
            if self.inflight.contains_key(&c.thing) {
                if cached.map_or(0, |(_, s)| s.version) != c.expected {
                    return Err(conflict(c));
                }
                known.push(Some(cached.cloned()));
            } else {
                known.push(
                    cached
                        .filter(|(_, s)| s.version == c.expected)
                        .cloned()
                        .map(Some),
                );
            }
        }
        let unknown: Vec<String> = commits
            .iter()
            .zip(&known)
            .filter(|(_, k)| k.is_none())
            .map(|(c, _)| c.thing.clone())
            .collect();
        let mut read = if unknown.is_empty() {
            Vec::new()
        } else {
            self.read_all(unknown)?
        }
        .into_iter();
        let mut starts = Vec::with_capacity(commits.len());
        for (c, k) in commits.iter().zip(known) {
            let start = match k {
                Some(k) => k,
                None => read.next().flatten(),
            };
            if start.as_ref().map_or(0, |(_, s)| s.version) != c.expected {
                return Err(conflict(c));
            }
            starts.push(start);
        }
        for (c, start) in commits.iter().zip(starts) {
            let old = start.as_ref().map(|(_, s)| s.clone()).unwrap_or_default();
            let mut new = next(&old, c);
            new.relayed = true;
            let follows = self.inflight.contains_key(&c.thing);
            self.spawn_write(c.clone(), if follows { None } else { start });
            self.overlay(&c.thing, new);
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        // Every write started is awaited: acknowledged by the servers (replicated).
        self.settle()
    }
}

impl Nats {
    fn every_record(
        &mut self,
        keep: fn(&Stored) -> bool,
    ) -> Result<Vec<(String, Loaded)>, StoreError> {
        self.settle_for_read();
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
