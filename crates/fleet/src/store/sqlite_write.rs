//! The one write of the SQLite store: a step (`Write`) applied inside a savepoint (its own
//! transaction, or nested in a batch). Queries live in `sqlite.rs`.

use rusqlite::{Connection, params};

use super::sqlite::{ms, text};
use super::{Recorded, StoreError, Write};
use detect::EventType;

pub(super) fn apply(conn: &mut Connection, path: &str, write: &Write) -> Result<(), StoreError> {
    let err = |source| StoreError::Sqlite {
        path: path.to_string(),
        source,
    };
    // A savepoint: its own transaction outside a batch, nested inside one.
    let tx = conn.savepoint().map_err(err)?;
    if let Some(r) = &write.report {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO reports (thing, report_id, time_ms, accepted, answer)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(params![
                r.thing,
                ms(r.report_id),
                ms(r.time_ms),
                r.accepted,
                text(&r.answer)
            ])
        })
        .map_err(err)?;
        let sql = if r.accepted {
            "INSERT INTO things (name, last_report_id, last_report_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET last_report_id = ?2, last_report_ms = ?3"
        } else {
            "INSERT OR IGNORE INTO things (name) VALUES (?1)"
        };
        tx.prepare_cached(sql)
            .and_then(|mut s| {
                if r.accepted {
                    s.execute(params![r.thing, ms(r.report_id), ms(r.time_ms)])
                } else {
                    s.execute(params![r.thing])
                }
            })
            .map_err(err)?;
    }
    for (thing, profile, state) in &write.states {
        match state {
            Some(s) => tx
                .prepare_cached(
                    "INSERT INTO states (thing, profile, state) VALUES (?1, ?2, ?3)
                     ON CONFLICT (thing, profile) DO UPDATE SET state = ?3",
                )
                .and_then(|mut st| st.execute(params![thing, profile, text(s)])),
            None => tx
                .prepare_cached("DELETE FROM states WHERE thing = ?1 AND profile = ?2")
                .and_then(|mut st| st.execute(params![thing, profile])),
        }
        .map_err(err)?;
    }
    for Recorded { event, suppressed } in &write.events {
        let e = event;
        let time = ms(e.violation_event_time);
        tx.prepare_cached(
            "INSERT INTO events (violation_id, time_ms, event, suppressed) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![e.violation_id, time, text(e), suppressed]))
        .map_err(err)?;
        match e.violation_event_type {
            EventType::InAlarm => tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO violations (violation_id, thing, profile, behavior,
                     start_ms, last_violation_ms, last_value, suppressed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        e.violation_id,
                        e.thing_name,
                        e.security_profile_name,
                        text(&e.behavior),
                        time,
                        e.metric_value.as_ref().map(text),
                        suppressed
                    ])
                }),
            kind => tx
                .prepare_cached(
                    "UPDATE violations SET end_ms = ?2, end_type = ?3 WHERE violation_id = ?1",
                )
                .and_then(|mut s| s.execute(params![e.violation_id, time, kind.name()])),
        }
        .map_err(err)?;
    }
    for x in &write.samples {
        let sql = if x.sum {
            "INSERT INTO samples (profile, behavior, window_start_ms, thing, value)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO UPDATE SET value = value + ?5"
        } else {
            "INSERT INTO samples (profile, behavior, window_start_ms, thing, value)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO UPDATE SET value = ?5"
        };
        tx.prepare_cached(sql)
            .and_then(|mut s| {
                s.execute(params![
                    x.profile,
                    x.behavior,
                    ms(x.window_start_ms),
                    x.thing,
                    x.value
                ])
            })
            .map_err(err)?;
    }
    for (id, last) in &write.touched {
        tx.prepare_cached(
            "UPDATE violations SET last_violation_ms = ?2 WHERE violation_id = ?1 AND end_ms IS NULL",
        )
        .and_then(|mut s| s.execute(params![id, ms(*last)]))
        .map_err(err)?;
    }
    tx.commit().map_err(err)
}
