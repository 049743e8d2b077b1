//! SQLite's metric history and event log (issue #21): `history` rows keyed (thing id, side,
//! time), thing ids in `history_things`, written inside a record's commit, pruned thing by
//! thing; the outbox's `events` listed by time with their violation's verification.

use rusqlite::{Connection, OptionalExtension, params};

use super::sqlite::ms;
use super::{EventLog, EventQuery, HistoryPoint, Listed, MetricHistory, Side, Sqlite, StoreError};

/// Writes a commit's points (inside its transaction); a point at a time already kept
/// replaces it (a window closed again after a crash).
pub(super) fn write(tx: &Connection, thing: &str, points: &[HistoryPoint]) -> rusqlite::Result<()> {
    if points.is_empty() {
        return Ok(());
    }
    let id = match id_of(tx, thing)? {
        Some(id) => id,
        None => {
            tx.prepare_cached("INSERT INTO history_things (name) VALUES (?1)")?
                .execute(params![thing])?;
            tx.last_insert_rowid()
        }
    };
    for p in points {
        tx.prepare_cached(
            "INSERT INTO history (thing, side, time_ms, data) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO UPDATE SET data = ?4",
        )?
        .execute(params![id, p.side as i64, ms(p.time_ms), p.data])?;
    }
    Ok(())
}

fn id_of(conn: &Connection, thing: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM history_things WHERE name = ?1")?
        .query_row(params![thing], |r| r.get(0))
        .optional()
}

impl MetricHistory for Sqlite {
    fn history(
        &mut self,
        thing: &str,
        side: Side,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        let Some(id) = id_of(&self.conn, thing).map_err(|e| self.err(e))? else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(i64, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT time_ms, data FROM history
                 WHERE thing = ?1 AND side = ?2 AND time_ms >= ?3 AND time_ms < ?4
                 ORDER BY time_ms LIMIT ?5",
            )
            .and_then(|mut s| {
                s.query_map(
                    params![id, side as i64, ms(from_ms), ms(to_ms), limit],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
                .collect()
            })
            .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|(t, data)| HistoryPoint {
                side,
                time_ms: t as u64,
                data,
            })
            .collect())
    }

    fn prune_history(&mut self, before_ms: u64) -> Result<usize, StoreError> {
        let ids: Vec<i64> = self
            .conn
            .prepare_cached("SELECT id FROM history_things")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| self.err(e))?;
        // One transaction (a savepoint inside the group one, if open) for every thing.
        let path = self.path.clone();
        let sp = self
            .conn
            .savepoint()
            .map_err(|e| super::sqlite::backend(&path, e))?;
        let mut n = 0;
        for id in ids {
            for side in [Side::Device, Side::Cloud] {
                n += sp
                    .prepare_cached(
                        "DELETE FROM history WHERE thing = ?1 AND side = ?2 AND time_ms < ?3",
                    )
                    .and_then(|mut s| s.execute(params![id, side as i64, ms(before_ms)]))
                    .map_err(|e| super::sqlite::backend(&path, e))?;
            }
        }
        sp.commit().map_err(|e| super::sqlite::backend(&path, e))?;
        Ok(n)
    }
}

impl EventLog for Sqlite {
    fn events(&mut self, q: &EventQuery) -> Result<Vec<Listed>, StoreError> {
        let (after_time, after_id) = q.after.map_or((-1, -1), |(t, id)| (ms(t), ms(id)));
        type Row = (i64, String, bool, Option<String>, Option<String>);
        // One thing's events: from its violations (`violations_thing`) to their events
        // (`events_violation`), a few rows; CROSS JOIN keeps that order. Otherwise by time
        // (`events_time`). Reading every event of the range for one thing's name took 10 s at
        // 1 000 000 events (scripts/bench-console).
        let sql = if q.thing.is_some() {
            "SELECT e.id, e.event, e.suppressed, v.verification_state, v.verification_description
             FROM violations v CROSS JOIN events e ON e.violation_id = v.violation_id
             WHERE v.thing = ?5 AND e.time_ms >= ?1 AND e.time_ms < ?2
               AND (e.time_ms, e.id) > (?3, ?4)
               AND (?6 IS NULL OR json_extract(e.event, '$.securityProfileName') = ?6)
             ORDER BY e.time_ms, e.id LIMIT ?7"
        } else {
            "SELECT e.id, e.event, e.suppressed, v.verification_state, v.verification_description
             FROM events e LEFT JOIN violations v ON v.violation_id = e.violation_id
             WHERE e.time_ms >= ?1 AND e.time_ms < ?2 AND (e.time_ms, e.id) > (?3, ?4)
               AND ?5 IS NULL
               AND (?6 IS NULL OR json_extract(e.event, '$.securityProfileName') = ?6)
             ORDER BY e.time_ms, e.id LIMIT ?7"
        };
        let rows: Vec<Row> = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.query_map(
                    params![
                        ms(q.start_ms),
                        ms(q.end_ms),
                        after_time,
                        after_id,
                        q.thing,
                        q.profile,
                        i64::try_from(q.limit).unwrap_or(i64::MAX)
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )?
                .collect()
            })
            .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|(id, event, suppressed, state, description)| {
                Ok(Listed {
                    position: id as u64,
                    event: self.json("events.event", &event)?,
                    suppressed,
                    verification_state: state.unwrap_or_else(|| "UNKNOWN".into()),
                    verification_state_description: description,
                })
            })
            .collect()
    }
}
