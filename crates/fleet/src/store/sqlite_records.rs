//! SQLite's thing records and outbox: a record is the `things` row (version, last report) and
//! the thing's `states` rows; commits join one transaction until `sync` (each in a savepoint,
//! each row checked against its expected version). The outbox is in `sqlite_outbox.rs`.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::sqlite::{backend, ms, text};
use super::{Commit, Loaded, Record, Recorded, Sqlite, StoreError, StoredReport, ThingRecords};
use crate::witness::Witness;
use detect::EventType;

impl ThingRecords for Sqlite {
    fn load(&mut self, thing: &str) -> Result<Loaded, StoreError> {
        let row: Option<(i64, Option<i64>, Option<i64>)> = self
            .conn
            .prepare_cached(
                "SELECT version, last_report_id, last_report_ms FROM things WHERE name = ?1",
            )
            .and_then(|mut s| {
                s.query_row(params![thing], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .map_err(|e| self.err(e))?;
        let Some((version, id, time)) = row else {
            return Ok(Loaded::default());
        };
        let rows: Vec<(String, String)> = self
            .conn
            .prepare_cached("SELECT profile, state FROM states WHERE thing = ?1")
            .and_then(|mut s| {
                s.query_map(params![thing], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(|e| self.err(e))?;
        let mut states = BTreeMap::new();
        for (profile, state) in rows {
            states.insert(profile, self.json("states.state", &state)?);
        }
        Ok(Loaded {
            version: version as u64,
            record: Record {
                last_report: id.zip(time).map(|(i, t)| (i as u64, t as u64)),
                states,
                witness: self.witness(thing)?,
            },
        })
    }

    fn answer(&mut self, thing: &str, report_id: u64) -> Result<Option<StoredReport>, StoreError> {
        type Row = (i64, bool, String, Option<Vec<u8>>);
        let row: Option<Row> = self
            .conn
            .prepare_cached(
                "SELECT time_ms, accepted, answer, digest FROM reports
                 WHERE thing = ?1 AND report_id = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![thing, ms(report_id)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
            })
            .map_err(|e| self.err(e))?;
        let Some((time, accepted, answer, digest)) = row else {
            return Ok(None);
        };
        Ok(Some(StoredReport {
            thing: thing.to_string(),
            report_id,
            time_ms: time as u64,
            accepted,
            answer: self.json("reports.answer", &answer)?,
            // A digest of another length is no digest of ours: nothing matches it.
            digest: digest.map(|d| d.try_into().unwrap_or([0; 32])),
        }))
    }

    fn with_state(&mut self) -> Result<Vec<(String, Loaded)>, StoreError> {
        type Row = (String, String, String, i64, Option<i64>, Option<i64>);
        let rows: Vec<Row> = self
            .conn
            .prepare_cached(
                "SELECT s.thing, s.profile, s.state, t.version, t.last_report_id, t.last_report_ms
                 FROM states s JOIN things t ON t.name = s.thing ORDER BY s.thing, s.profile",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })?
                .collect()
            })
            .map_err(|e| self.err(e))?;
        let mut out: Vec<(String, Loaded)> = Vec::new();
        for (thing, profile, state, version, id, time) in rows {
            let state = self.json("states.state", &state)?;
            if out.last().is_none_or(|(t, _)| *t != thing) {
                let record = Record {
                    last_report: id.zip(time).map(|(i, t)| (i as u64, t as u64)),
                    states: BTreeMap::new(),
                    witness: self.witness(&thing)?,
                };
                let version = version as u64;
                out.push((thing, Loaded { version, record }));
            }
            if let Some((_, l)) = out.last_mut() {
                l.record.states.insert(profile, state);
            }
        }
        Ok(out)
    }

    fn with_witness(&mut self) -> Result<Vec<(String, Loaded)>, StoreError> {
        let names: Vec<String> = self
            .conn
            .prepare_cached("SELECT thing FROM witness ORDER BY thing")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(names.len());
        for thing in names {
            let loaded = self.load(&thing)?;
            out.push((thing, loaded));
        }
        Ok(out)
    }

    fn commit(&mut self, commits: &[Commit]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |e| backend(&path, e);
        self.group().map_err(err)?;
        // A savepoint per call: a conflict undoes this call only, not the group.
        let sp = self.conn.savepoint().map_err(err)?;
        for c in commits {
            write(&sp, c).map_err(|e| match e {
                Failed::Conflict => StoreError::Conflict {
                    thing: c.thing.clone(),
                    expected: c.expected,
                },
                Failed::Sqlite(e) => err(e),
            })?;
        }
        sp.commit().map_err(err)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))
    }
}

impl Sqlite {
    /// A thing's broker counters (part of its record), if any.
    fn witness(&self, thing: &str) -> Result<Option<Witness>, StoreError> {
        let text: Option<String> = self
            .conn
            .prepare_cached("SELECT state FROM witness WHERE thing = ?1")
            .and_then(|mut s| s.query_row(params![thing], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        text.map(|t| self.json("witness.state", &t)).transpose()
    }

    /// Opens the group transaction that commits join until `sync` (`BEGIN IMMEDIATE`: takes
    /// the write lock now, waiting up to the busy timeout, so no commit fails half-way on it).
    pub(super) fn group(&mut self) -> rusqlite::Result<()> {
        if self.conn.is_autocommit() {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
        }
        Ok(())
    }
}

enum Failed {
    Conflict,
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for Failed {
    fn from(e: rusqlite::Error) -> Failed {
        Failed::Sqlite(e)
    }
}

/// One record's commit inside the group transaction. Violations: starts, then the alarms
/// still active, then ends (the order of one step: an ended alarm is not active after it).
fn write(tx: &Connection, c: &Commit) -> Result<(), Failed> {
    let (id, time) = c.record.last_report.unzip();
    let n = tx
        .prepare_cached(
            "UPDATE things SET version = version + 1, last_report_id = ?3, last_report_ms = ?4
             WHERE name = ?1 AND version = ?2",
        )?
        .execute(params![c.thing, ms(c.expected), id.map(ms), time.map(ms)])?;
    if n == 0 {
        let inserted = c.expected == 0
            && tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO things (name, version, last_report_id, last_report_ms)
                     VALUES (?1, 1, ?2, ?3)",
                )?
                .execute(params![c.thing, id.map(ms), time.map(ms)])?
                == 1;
        if !inserted {
            return Err(Failed::Conflict);
        }
    }
    for (profile, state) in &c.record.states {
        tx.prepare_cached(
            "INSERT INTO states (thing, profile, state) VALUES (?1, ?2, ?3)
             ON CONFLICT (thing, profile) DO UPDATE SET state = ?3",
        )?
        .execute(params![c.thing, profile, text(state)])?;
    }
    // The profiles the record no longer has (one or none kept: a plain statement).
    let mut kept = c.record.states.keys();
    match (kept.next(), kept.next()) {
        (None, _) => tx
            .prepare_cached("DELETE FROM states WHERE thing = ?1")?
            .execute(params![c.thing])?,
        (Some(only), None) => tx
            .prepare_cached("DELETE FROM states WHERE thing = ?1 AND profile <> ?2")?
            .execute(params![c.thing, only])?,
        _ => {
            let all: Vec<&String> = c.record.states.keys().collect();
            tx.prepare_cached(
                "DELETE FROM states WHERE thing = ?1
                 AND profile NOT IN (SELECT value FROM json_each(?2))",
            )?
            .execute(params![c.thing, text(&all)])?
        }
    };
    match &c.record.witness {
        Some(w) => tx
            .prepare_cached(
                "INSERT INTO witness (thing, state) VALUES (?1, ?2)
                 ON CONFLICT (thing) DO UPDATE SET state = ?2",
            )?
            .execute(params![c.thing, text(w)])?,
        None => tx
            .prepare_cached("DELETE FROM witness WHERE thing = ?1")?
            .execute(params![c.thing])?,
    };
    // An accepted answer stays (no later report can be accepted under its id); a rejected
    // one gives way to the next answer to its id (issue #17).
    for r in &c.answers {
        tx.prepare_cached(
            "INSERT INTO reports (thing, report_id, time_ms, accepted, answer, digest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (thing, report_id) DO UPDATE SET time_ms = ?3, accepted = ?4,
             answer = ?5, digest = ?6 WHERE NOT reports.accepted",
        )?
        .execute(params![
            r.thing,
            ms(r.report_id),
            ms(r.time_ms),
            r.accepted,
            text(&r.answer),
            r.digest.as_ref().map(|d| d.as_slice())
        ])?;
    }
    super::sqlite_outbox::append(tx, &c.events)?;
    let starts = c.events.iter().filter(|r| is_start(r));
    for Recorded {
        event: e,
        suppressed,
    } in starts
    {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO violations (violation_id, thing, profile, behavior,
             start_ms, last_violation_ms, last_value, suppressed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
        )?
        .execute(params![
            e.violation_id,
            e.thing_name,
            e.security_profile_name,
            text(&e.behavior),
            ms(e.violation_event_time),
            e.metric_value.as_ref().map(text),
            suppressed
        ])?;
    }
    for (id, last) in &c.touched {
        tx.prepare_cached(
            "UPDATE violations SET last_violation_ms = ?2 WHERE violation_id = ?1 AND end_ms IS NULL",
        )?
        .execute(params![id, ms(*last)])?;
    }
    for Recorded { event: e, .. } in c.events.iter().filter(|r| !is_start(r)) {
        tx.prepare_cached(
            "UPDATE violations SET end_ms = ?2, end_type = ?3 WHERE violation_id = ?1",
        )?
        .execute(params![
            e.violation_id,
            ms(e.violation_event_time),
            e.violation_event_type.name()
        ])?;
    }
    super::sqlite_history::write(tx, &c.thing, &c.history)?;
    for x in &c.samples {
        let sql = if x.sum {
            "INSERT INTO samples (profile, behavior, window_start_ms, thing, value)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO UPDATE SET value = value + ?5"
        } else {
            "INSERT INTO samples (profile, behavior, window_start_ms, thing, value)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO UPDATE SET value = ?5"
        };
        tx.prepare_cached(sql)?.execute(params![
            x.profile,
            x.behavior,
            ms(x.window_start_ms),
            x.thing,
            x.value
        ])?;
    }
    Ok(())
}

fn is_start(r: &Recorded) -> bool {
    r.event.violation_event_type == EventType::InAlarm
}
