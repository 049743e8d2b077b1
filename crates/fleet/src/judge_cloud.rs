//! The judge's cloud-side half (issue #18, detect-rules §3.4): broker events folded into the
//! records of the things they concern, and the timer that judges each closed window with the
//! same engines, events and commits as reports. Load → decide → commit, like reports.

use std::collections::BTreeMap;

use detect::{MetricRef, Profile, STALE_AFTER_MS};
use protocol::broker::Event;

use super::{Decision, Judge};
use crate::sources::Delivery;
use crate::sources::broker::{Step, step};
use crate::store::{Commit, Store, StoreError};
use crate::window::{Closed, Dimensions};
use crate::witness::Witness;

/// Windows close this long after their end at most (late batches still count); a quarter of
/// the bucket when buckets are shorter (`duration_override_secs`).
pub const GRACE_MS: u64 = 10_000;
/// The bucket (shortest window) without `duration_override_secs`: every `durationSeconds` is
/// a multiple of it, so longer windows add buckets up.
pub const BUCKET_MS: u64 = 300_000;
/// The longest window (3600 s): buckets older than it before the next close are dropped.
const LONGEST_MS: u64 = 3_600_000;
/// Events stamped this many buckets or more ahead of the fleet's clock are not counted.
pub const AHEAD_BUCKETS: u64 = 4;
/// Windows judged per thing per tick at most (a day of 300 s buckets); older ones missed
/// while the fleet was down longer are skipped, and the count is logged.
pub const MAX_WINDOWS_PER_TICK: u64 = 288;

/// The cloud-side setup: dimensions, bucket length, and the fleet's own client ids (no things).
#[derive(Debug, Clone)]
pub struct CloudSetup {
    pub dimensions: Dimensions,
    pub bucket_ms: u64,
    /// Every MQTT connection of the fleet itself: `client_id` (reports) and its alerts
    /// connection. The NATS source's own connection is a plain NATS client, never an MQTT
    /// client id, so the NATS source reports none of its events (`sources::nats_events`).
    pub own_client_ids: [String; 2],
}

impl CloudSetup {
    /// `own` is `[broker] client_id`.
    pub fn new(dimensions: Dimensions, duration_override_secs: Option<u64>, own: &str) -> Self {
        CloudSetup {
            dimensions,
            bucket_ms: duration_override_secs.map_or(BUCKET_MS, |s| s.max(1) * 1000),
            own_client_ids: [own.to_string(), crate::config::alerts_client_id(own)],
        }
    }

    /// Is `client_id` one of the fleet's own connections (never a thing, §3.4)?
    pub fn is_own(&self, client_id: &str) -> bool {
        self.own_client_ids.iter().any(|own| own == client_id)
    }

    pub fn grace_ms(&self) -> u64 {
        GRACE_MS.min(self.bucket_ms / 4)
    }

    fn longest_ms(&self) -> u64 {
        LONGEST_MS.max(self.bucket_ms)
    }
}

/// What one delivery did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Witnessed {
    pub things: usize,
    /// Events whose windows were already judged, or stamped too far ahead (counted nowhere).
    pub late: u64,
    /// Batches never received, by the seq rule.
    pub missed: u64,
    /// Cluster mode: events of things another instance owns (it counts them from its own
    /// copy of the batch), or whose commit was refused because the thing moved meanwhile.
    pub elsewhere: u64,
}

impl Judge {
    pub fn set_cloud(&mut self, setup: CloudSetup) {
        self.cloud = Some(setup);
    }

    /// How often the window timer ticks (a second, or a quarter bucket when shorter), and the
    /// grace before its first tick.
    pub fn close_timing(&self) -> (std::time::Duration, std::time::Duration) {
        let ms = |v: u64| std::time::Duration::from_millis(v.max(1));
        match &self.cloud {
            Some(c) => (ms((c.bucket_ms / 4).min(1000)), ms(c.grace_ms())),
            None => (ms(1000), ms(GRACE_MS)),
        }
    }

    /// Does a profile watching `thing` have a cloud-side rule?
    fn watches_cloud(&self, thing: &str) -> bool {
        self.watching(thing).iter().any(|p| {
            p.behaviors.iter().any(|b| {
                b.rule
                    .as_ref()
                    .is_some_and(|r| matches!(r.metric, MetricRef::Cloud(_)))
            })
        })
    }

    /// Folds one delivery into the records of the things it concerns (those a profile with a
    /// cloud-side behavior watches; not the fleet itself), commits each, moves the source's
    /// cursor. A batch read before is skipped; a seq gap is logged with its exact count.
    pub fn witness(
        &mut self,
        store: &mut dyn Store,
        d: &Delivery,
        now_ms: u64,
    ) -> Result<Witnessed, StoreError> {
        let mut out = Witnessed::default();
        let Some(setup) = self.cloud.clone() else {
            return Ok(out);
        };
        // Cluster mode: every instance reads every batch, so each keeps its own cursor.
        let cursor = match &self.instance {
            Some(instance) => format!("{}@{instance}", d.source),
            None => d.source.to_string(),
        };
        let last = store.cursor(&cursor)?;
        match step(last.as_ref(), &d.instance, d.seq) {
            Step::Again => {
                tracing::debug!(source = d.source, instance = %d.instance, seq = d.seq, "broker event batch read before: skipped");
                return Ok(out);
            }
            Step::Gap { missed } => {
                out.missed = missed;
                tracing::warn!(source = d.source, instance = %d.instance, seq = d.seq, missed, "broker event batches missed: their events count in no window");
            }
            Step::Restarted { missed } => {
                out.missed = missed;
                let previous = last.map(|(i, s)| format!("{i} after seq {s}"));
                tracing::warn!(source = d.source, instance = %d.instance, seq = d.seq, missed, previous = ?previous, "broker integration restarted: batches of the previous run after the last one read are unknown");
            }
            Step::Next => {}
        }
        if d.dropped > 0 {
            tracing::warn!(source = d.source, instance = %d.instance, dropped = d.dropped, "the broker integration dropped events at its own bounds");
        }
        let mut by_thing: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
        for e in &d.events {
            let thing = match e {
                Event::Connect { client_id, .. }
                | Event::Disconnect { client_id, .. }
                | Event::Traffic { client_id, .. }
                | Event::Denied { client_id, .. } => client_id.as_str(),
                Event::ClosedBeforeConnect { .. } => continue,
            };
            if !setup.is_own(thing) && protocol::identity::check(thing).is_ok() {
                by_thing.entry(thing).or_default().push(e);
            }
        }
        for (thing, events) in by_thing {
            if !self.watches_cloud(thing) {
                continue;
            }
            if !self.in_scope(thing) {
                out.elsewhere += events.len() as u64;
                continue;
            }
            let loaded = store.load(thing)?;
            let mut record = loaded.record;
            // Stamps beyond `AHEAD_BUCKETS` ahead of our clock are refused (they would hold
            // buckets no window reaches soon); a new thing starts at most a longest window back.
            let ahead = now_ms.saturating_add(AHEAD_BUCKETS * setup.bucket_ms);
            let (events, future): (Vec<&Event>, Vec<&Event>) =
                events.into_iter().partition(|e| at_ms(e) < ahead);
            if !future.is_empty() {
                let future = future.len();
                tracing::warn!(
                    thing,
                    future,
                    "broker events stamped too far ahead of our clock: not counted"
                );
                out.late += future as u64;
            }
            let oldest = now_ms.saturating_sub(setup.longest_ms());
            let first = events.iter().map(|e| at_ms(e)).min().unwrap_or(now_ms);
            let w = record
                .witness
                .get_or_insert_with(|| Witness::starting(first.max(oldest), setup.bucket_ms));
            let late = events.iter().filter(|e| !w.add(e, setup.bucket_ms)).count() as u64;
            if late > 0 {
                tracing::warn!(
                    thing,
                    late,
                    closed_until_ms = w.closed_until_ms,
                    "broker events for windows already judged: not counted"
                );
            }
            out.late += late;
            out.things += 1;
            let commit = Commit {
                thing: thing.to_string(),
                expected: loaded.version,
                record,
                ..Commit::default()
            };
            if self.commit_owned(store, vec![commit])?.is_empty() {
                out.elsewhere += events.len() as u64;
                out.things -= 1;
            }
        }
        if self.scope.is_some() {
            tracing::info!(
                source = d.source,
                seq = d.seq,
                things = out.things,
                elsewhere = out.elsewhere,
                "broker event batch: counted the owned things' events"
            );
        }
        store.set_cursor(&cursor, &d.instance, d.seq)?;
        Ok(out)
    }

    /// Judges every window that ended `grace` before `now_ms` and is not judged yet, oldest
    /// first, and each window end across all things at once: every thing's datapoint of a
    /// window is committed before any thing's next window is judged against it (§3.4, §4.8),
    /// whether the fleet closes windows live or catches up after being away. Forgets a thing
    /// 48 h after its last event. Reads the records only when a bucket end passed.
    pub fn close_windows(
        &mut self,
        store: &mut dyn Store,
        now_ms: u64,
    ) -> Result<super::sweep::Swept, StoreError> {
        let mut swept = super::sweep::Swept::default();
        let Some(setup) = self.cloud.clone() else {
            return Ok(swept);
        };
        let bucket = setup.bucket_ms;
        let due = now_ms.saturating_sub(setup.grace_ms());
        let due = due - due % bucket;
        // Nothing closes between bucket ends: the records are read once per bucket.
        if due <= self.cloud_due {
            return Ok(swept);
        }
        self.cloud_due = due;
        let mut open = Vec::new();
        for (thing, loaded) in store.with_witness()? {
            // Cluster mode: the owner closes a thing's windows.
            if !self.in_scope(&thing) {
                continue;
            }
            let mut record = loaded.record;
            let Some(mut w) = record.witness.take() else {
                continue;
            };
            if w.closed_until_ms >= due {
                continue;
            }
            let windows = (due - w.closed_until_ms) / bucket;
            if windows > MAX_WINDOWS_PER_TICK {
                let skipped = windows - MAX_WINDOWS_PER_TICK;
                tracing::warn!(
                    thing,
                    skipped,
                    "cloud-side windows skipped: the fleet was away longer than it catches up"
                );
                w.closed_until_ms = due - MAX_WINDOWS_PER_TICK * bucket;
            }
            let watching = self.watching(&thing).into_iter().cloned().collect();
            open.push(Open {
                thing,
                version: loaded.version,
                record,
                witness: w,
                watching,
            });
        }
        let Some(first) = open.iter().map(|o| o.witness.closed_until_ms).min() else {
            self.statistical.cloud_closed_until(due);
            return Ok(swept);
        };
        let mut end = first + bucket;
        while end <= due {
            // Every window up to `end − bucket` is committed for every thing.
            self.statistical.cloud_closed_until(end - bucket);
            let mut commits = Vec::new();
            for o in open.iter_mut().filter(|o| o.witness.closed_until_ms < end) {
                commits.push(self.close_one(store, &setup, o, end, now_ms, end == due)?);
                o.version += 1;
            }
            let tried = commits.len();
            let commits = self.commit_owned(store, commits)?;
            if commits.len() < tried {
                // Cluster mode: things that moved are the new owner's from here on.
                let written: std::collections::BTreeSet<&str> =
                    commits.iter().map(|c| c.thing.as_str()).collect();
                open.retain(|o| {
                    o.witness.closed_until_ms != end || written.contains(o.thing.as_str())
                });
            }
            swept
                .events
                .extend(commits.into_iter().flat_map(|c| c.events));
            end += bucket;
        }
        self.statistical.cloud_closed_until(due);
        Ok(swept)
    }

    /// Judges the window of `o` that ends at `end`, moves its witness on; the commit. After
    /// the `last` window of this call, a thing silent for 48 h is forgotten.
    fn close_one(
        &mut self,
        store: &mut dyn Store,
        setup: &CloudSetup,
        o: &mut Open,
        end: u64,
        now_ms: u64,
        last: bool,
    ) -> Result<Commit, StoreError> {
        let expected = o.version;
        let mut d = Decision {
            record: std::mem::take(&mut o.record),
            ..Decision::default()
        };
        let obs = Closed {
            thing: &o.thing,
            witness: &o.witness,
            end_ms: end,
            dimensions: &setup.dimensions,
        };
        for p in &o.watching {
            // The window is [end − d, end): thresholds of the window before it.
            let p = self.statistical.resolve(store, p.clone(), end - 1)?;
            let name = p.name.clone();
            let samples = self.statistical.samples(&name, &o.thing, &obs, end - 1);
            d.samples.extend(samples);
            let state = d.record.states.remove(&name);
            let (mut engine, mut events) = self.engine(&o.thing, p, state, end);
            events.extend(engine.evaluate(&obs, end));
            self.finish(&o.thing, &name, engine, events, &mut d);
        }
        let history = crate::history::cloud(&obs, setup.bucket_ms);
        let w = &mut o.witness;
        w.closed_until_ms = end;
        w.drop_before(end.saturating_sub(setup.longest_ms() - setup.bucket_ms));
        let silent = last && now_ms.saturating_sub(w.last_event_ms) > STALE_AFTER_MS;
        if silent {
            tracing::info!(thing = %o.thing, "no broker event for 48 h: its cloud-side windows stop");
        }
        d.record.witness = (!silent).then(|| w.clone());
        o.record = d.record.clone();
        o.record.witness = None;
        Ok(Commit {
            thing: o.thing.clone(),
            expected,
            record: d.record,
            events: d.events,
            touched: d.touched,
            samples: d.samples,
            history: history.into_iter().collect(),
            ..Commit::default()
        })
    }
}

/// A thing whose windows are being closed: its record as committed last (witness apart).
struct Open {
    thing: String,
    version: crate::store::Version,
    record: crate::store::Record,
    witness: Witness,
    watching: Vec<Profile>,
}

fn at_ms(e: &Event) -> u64 {
    match e {
        Event::Connect { at_ms, .. }
        | Event::Disconnect { at_ms, .. }
        | Event::Denied { at_ms, .. }
        | Event::ClosedBeforeConnect { at_ms, .. } => *at_ms,
        Event::Traffic { from_ms, .. } => *from_ms,
    }
}
