//! The in-memory store: every trait over plain maps behind one lock; clones are handles on the
//! same data (like several connections to one database). For tests and `replay`; nothing persists.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    Commit, Filter, LastRejection, Loaded, Outbox, Pending, Record, Recorded, Registry, Samples,
    Side, Sink, SourceCursors, Store, StoreError, StoredReport, Thing, ThingRecords, Violation,
    ViolationIndex,
};
use detect::EventType;

#[derive(Clone, Default)]
pub struct Memory(Arc<Mutex<Inner>>);

#[derive(Default)]
struct Inner {
    things: BTreeMap<String, Entry>,
    outbox: Vec<Queued>,
    /// The keys of `outbox`'s entries (an event is queued once).
    queued: HashSet<String>,
    /// Per sink: the last position sent.
    cursors: [u64; 2],
    violations: BTreeMap<String, Violation>,
    samples: BTreeMap<(String, String, u64, String), f64>,
    rejections: BTreeMap<String, LastRejection>,
    sources: BTreeMap<String, (String, u64)>,
    history: BTreeMap<(String, Side, u64), Vec<u8>>,
}

#[derive(Default)]
struct Entry {
    registered: bool,
    groups: BTreeSet<String>,
    version: u64,
    record: Record,
    answers: BTreeMap<u64, StoredReport>,
}

struct Queued {
    position: u64,
    key: String,
    recorded: Recorded,
    payload: Vec<u8>,
}

impl Memory {
    pub fn new() -> Memory {
        Memory::default()
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[path = "mem_history.rs"]
mod history;

fn slot(sink: Sink) -> usize {
    match sink {
        Sink::Mqtt => 0,
        Sink::Webhook => 1,
    }
}

impl Inner {
    /// Every thing whose entry passes `keep`, with its record and version.
    fn loaded_where(&self, keep: impl Fn(&Entry) -> bool) -> Vec<(String, Loaded)> {
        self.things
            .iter()
            .filter(|(_, e)| keep(e))
            .map(|(name, e)| {
                let loaded = Loaded {
                    version: e.version,
                    record: e.record.clone(),
                };
                (name.clone(), loaded)
            })
            .collect()
    }

    fn append(&mut self, events: &[Recorded]) {
        for r in events {
            let key = r.key();
            if !self.queued.insert(key.clone()) {
                continue;
            }
            let position = self.outbox.last().map_or(1, |q| q.position + 1);
            let payload = serde_json::to_vec(&r.event).unwrap_or_default();
            self.outbox.push(Queued {
                position,
                key,
                recorded: r.clone(),
                payload,
            });
        }
    }

    fn apply(&mut self, c: &Commit) {
        let entry = self.things.entry(c.thing.clone()).or_default();
        entry.version += 1;
        entry.record = c.record.clone();
        for a in &c.answers {
            let kept = entry.answers.get(&a.report_id).is_some_and(|o| o.accepted);
            if !kept {
                entry.answers.insert(a.report_id, a.clone());
            }
        }
        self.append(&c.events);
        for Recorded {
            event: e,
            suppressed,
        } in &c.events
        {
            if e.violation_event_type == EventType::InAlarm {
                self.violations
                    .entry(e.violation_id.clone())
                    .or_insert_with(|| Violation::opened(e, *suppressed));
            }
        }
        for (id, last) in &c.touched {
            if let Some(v) = self.violations.get_mut(id)
                && v.violation_end_time.is_none()
            {
                v.last_violation_time = *last;
            }
        }
        for Recorded { event: e, .. } in &c.events {
            if e.violation_event_type != EventType::InAlarm
                && let Some(v) = self.violations.get_mut(&e.violation_id)
            {
                v.violation_end_time = Some(e.violation_event_time);
                v.end_event_type = Some(e.violation_event_type.name().into());
            }
        }
        for p in &c.history {
            let key = (c.thing.clone(), p.side, p.time_ms);
            self.history.insert(key, p.data.clone());
        }
        for x in &c.samples {
            let key = (
                x.profile.clone(),
                x.behavior.clone(),
                x.window_start_ms,
                x.thing.clone(),
            );
            let value = self.samples.entry(key).or_insert(0.0);
            *value = if x.sum { *value + x.value } else { x.value };
        }
    }
}

impl ThingRecords for Memory {
    fn load(&mut self, thing: &str) -> Result<Loaded, StoreError> {
        Ok(self
            .inner()
            .things
            .get(thing)
            .map(|e| Loaded {
                version: e.version,
                record: e.record.clone(),
            })
            .unwrap_or_default())
    }

    fn answer(&mut self, thing: &str, report_id: u64) -> Result<Option<StoredReport>, StoreError> {
        let inner = self.inner();
        let found = inner
            .things
            .get(thing)
            .and_then(|e| e.answers.get(&report_id));
        Ok(found.cloned())
    }

    fn with_state(&mut self) -> Result<Vec<(String, Loaded)>, StoreError> {
        Ok(self.inner().loaded_where(|e| !e.record.states.is_empty()))
    }

    fn with_witness(&mut self) -> Result<Vec<(String, Loaded)>, StoreError> {
        Ok(self.inner().loaded_where(|e| e.record.witness.is_some()))
    }

    fn commit(&mut self, commits: &[Commit]) -> Result<(), StoreError> {
        let mut inner = self.inner();
        for c in commits {
            let version = inner.things.get(&c.thing).map_or(0, |e| e.version);
            if version != c.expected {
                return Err(StoreError::Conflict {
                    thing: c.thing.clone(),
                    expected: c.expected,
                });
            }
        }
        commits.iter().for_each(|c| inner.apply(c));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl SourceCursors for Memory {
    fn cursor(&mut self, source: &str) -> Result<Option<(String, u64)>, StoreError> {
        Ok(self.inner().sources.get(source).cloned())
    }

    fn set_cursor(&mut self, source: &str, instance: &str, seq: u64) -> Result<(), StoreError> {
        let entry = (instance.to_string(), seq);
        self.inner().sources.insert(source.to_string(), entry);
        Ok(())
    }
}

impl Outbox for Memory {
    fn append(&mut self, events: &[Recorded]) -> Result<(), StoreError> {
        self.inner().append(events);
        Ok(())
    }

    fn pending(&mut self, sink: Sink, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let inner = self.inner();
        let cursor = inner.cursors[slot(sink)];
        // Positions rise along the outbox.
        let from = inner.outbox.partition_point(|q| q.position <= cursor);
        Ok(inner.outbox[from..]
            .iter()
            .filter(|q| q.position > cursor && !q.recorded.suppressed)
            .take(limit)
            .map(|q| Pending {
                position: q.position,
                event: q.recorded.event.clone(),
                payload: q.payload.clone(),
            })
            .collect())
    }

    fn ack(&mut self, sink: Sink, position: u64) -> Result<(), StoreError> {
        let mut inner = self.inner();
        let cursor = &mut inner.cursors[slot(sink)];
        *cursor = (*cursor).max(position);
        Ok(())
    }
}

impl Samples for Memory {
    fn window(
        &mut self,
        profile: &str,
        behavior: &str,
        window_start_ms: u64,
    ) -> Result<Vec<f64>, StoreError> {
        Ok(self
            .inner()
            .samples
            .iter()
            .filter(|((p, b, w, _), _)| p == profile && b == behavior && *w == window_start_ms)
            .map(|(_, v)| *v)
            .collect())
    }
}

impl Registry for Memory {
    fn things(&mut self) -> Result<Vec<Thing>, StoreError> {
        let inner = self.inner();
        let none = Entry::default();
        let names: BTreeSet<&String> = inner.things.keys().chain(inner.rejections.keys()).collect();
        Ok(names
            .into_iter()
            .map(|name| {
                let e = inner.things.get(name).unwrap_or(&none);
                Thing {
                    name: name.clone(),
                    registered: e.registered,
                    groups: e.groups.clone(),
                    last_report_id: e.record.last_report.map(|(id, _)| id),
                    last_report_ms: e.record.last_report.map(|(_, ms)| ms),
                    last_rejection: inner.rejections.get(name).cloned(),
                }
            })
            .collect())
    }

    fn register(&mut self, name: &str, groups: &BTreeSet<String>) -> Result<(), StoreError> {
        let mut inner = self.inner();
        let entry = inner.things.entry(name.to_string()).or_default();
        entry.registered = true;
        entry.groups = groups.clone();
        Ok(())
    }

    fn note_rejection(&mut self, thing: &str, r: &LastRejection) -> Result<(), StoreError> {
        self.inner().rejections.insert(thing.to_string(), r.clone());
        Ok(())
    }
}

impl ViolationIndex for Memory {
    fn violations(&mut self, f: &Filter) -> Result<Vec<Violation>, StoreError> {
        let mut list: Vec<Violation> = self
            .inner()
            .violations
            .values()
            .filter(|v| f.matches(v))
            .cloned()
            .collect();
        super::sort_violations(&mut list);
        Ok(list)
    }

    fn verify(
        &mut self,
        violation_id: &str,
        state: &str,
        description: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut inner = self.inner();
        let Some(v) = inner.violations.get_mut(violation_id) else {
            return Ok(false);
        };
        v.verification_state = state.to_string();
        v.verification_state_description = description.map(str::to_string);
        Ok(true)
    }
}

impl Store for Memory {
    fn prune(
        &mut self,
        history_before_ms: u64,
        reports_before_ms: u64,
    ) -> Result<usize, StoreError> {
        let mut inner = self.inner();
        let inner = &mut *inner;
        let before = count(inner);
        inner
            .violations
            .retain(|_, v| v.violation_end_time.is_none_or(|t| t >= history_before_ms));
        let sent = inner.cursors[0].min(inner.cursors[1]);
        let queued = &mut inner.queued;
        inner.outbox.retain(|q| {
            let done = q.position <= sent || q.recorded.suppressed;
            let keep = !(done && q.recorded.event.violation_event_time < history_before_ms);
            if !keep {
                queued.remove(&q.key);
            }
            keep
        });
        for e in inner.things.values_mut() {
            e.answers.retain(|_, a| a.time_ms >= reports_before_ms);
        }
        inner
            .samples
            .retain(|(_, _, w, _), _| *w >= reports_before_ms);
        // Not counted: a thing's last rejection is a note, not history.
        inner
            .rejections
            .retain(|_, r| r.time_ms >= reports_before_ms);
        Ok(before - count(inner))
    }
}

fn count(inner: &Inner) -> usize {
    let answers: usize = inner.things.values().map(|e| e.answers.len()).sum();
    inner.violations.len() + inner.outbox.len() + answers + inner.samples.len()
}
