//! The embedded store: one SQLite file in WAL mode (synchronous=NORMAL: a committed step
//! survives a process crash; a power cut may lose the last commits, which the broker then
//! redelivers because they were not acknowledged). Schema and queries only.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Channel, Filter, StoreError, StoredReport, Thing, Unsent, Violation, Write};
use detect::EngineState;

const SCHEMA: &str = include_str!("schema.sql");

pub struct Sqlite {
    conn: Connection,
    path: String,
}

impl Sqlite {
    /// Opens (creating) the database file and its schema.
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        let name = path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: name.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Sqlite { conn, path: name })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        text: &str,
    ) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|source| StoreError::Json {
            path: self.path.clone(),
            what: what.to_string(),
            source,
        })
    }
}

pub(super) fn text<T: serde::Serialize>(v: &T) -> String {
    // Serializing our own plain data types cannot fail (string keys, finite numbers are
    // written as null by serde_json otherwise).
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub(super) fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// name, registered, groups (JSON), last report id, last report time.
type ThingRow = (String, bool, String, Option<i64>, Option<i64>);

fn thing_row(row: &rusqlite::Row) -> rusqlite::Result<ThingRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

impl Sqlite {
    fn to_thing(
        &self,
        (name, registered, groups, id, time): ThingRow,
    ) -> Result<Thing, StoreError> {
        let groups: BTreeSet<String> = self.json("things.groups", &groups)?;
        Ok(Thing {
            name,
            registered,
            groups,
            last_report_id: id.map(|v| v as u64),
            last_report_ms: time.map(|v| v as u64),
        })
    }
}

impl super::Store for Sqlite {
    fn report(&mut self, thing: &str, report_id: u64) -> Result<Option<StoredReport>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT time_ms, accepted, answer FROM reports WHERE thing = ?1 AND report_id = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![thing, ms(report_id)], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, bool>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .optional()
            })
            .map_err(|e| self.err(e))?;
        let Some((time, accepted, answer)) = row else {
            return Ok(None);
        };
        Ok(Some(StoredReport {
            thing: thing.to_string(),
            report_id,
            time_ms: time as u64,
            accepted,
            answer: self.json("reports.answer", &answer)?,
        }))
    }

    fn thing(&mut self, name: &str) -> Result<Option<Thing>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT name, registered, groups, last_report_id, last_report_ms FROM things WHERE name = ?1",
            )
            .and_then(|mut s| s.query_row(params![name], thing_row).optional())
            .map_err(|e| self.err(e))?;
        row.map(|r| self.to_thing(r)).transpose()
    }

    fn things(&mut self) -> Result<Vec<Thing>, StoreError> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT name, registered, groups, last_report_id, last_report_ms FROM things ORDER BY name",
            )
            .and_then(|mut s| s.query_map([], thing_row)?.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        rows.into_iter().map(|r| self.to_thing(r)).collect()
    }

    fn register(&mut self, name: &str, groups: &BTreeSet<String>) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO things (name, registered, groups) VALUES (?1, 1, ?2)
                 ON CONFLICT (name) DO UPDATE SET registered = 1, groups = ?2",
                params![name, text(groups)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn state(&mut self, thing: &str, profile: &str) -> Result<Option<EngineState>, StoreError> {
        let row: Option<String> = self
            .conn
            .prepare_cached("SELECT state FROM states WHERE thing = ?1 AND profile = ?2")
            .and_then(|mut s| {
                s.query_row(params![thing, profile], |r| r.get(0))
                    .optional()
            })
            .map_err(|e| self.err(e))?;
        row.map(|t| self.json("states.state", &t)).transpose()
    }

    fn states(&mut self) -> Result<Vec<(String, String, EngineState)>, StoreError> {
        let rows: Vec<(String, String, String)> = self
            .conn
            .prepare_cached("SELECT thing, profile, state FROM states ORDER BY thing, profile")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|(t, p, s)| Ok((t, p, self.json("states.state", &s)?)))
            .collect()
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))
    }

    fn apply(&mut self, write: &Write) -> Result<(), StoreError> {
        let path = self.path.clone();
        super::sqlite_write::apply(&mut self.conn, &path, write)
    }

    fn window(
        &mut self,
        profile: &str,
        behavior: &str,
        window_start_ms: u64,
    ) -> Result<Vec<f64>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT value FROM samples WHERE profile = ?1 AND behavior = ?2 AND window_start_ms = ?3",
            )
            .and_then(|mut s| {
                s.query_map(params![profile, behavior, ms(window_start_ms)], |r| r.get(0))?
                    .collect()
            })
            .map_err(|e| self.err(e))
    }

    fn unsent(&mut self, channel: Channel, limit: usize) -> Result<Vec<Unsent>, StoreError> {
        let sql = match channel {
            Channel::Mqtt => {
                "SELECT id, event FROM events WHERE sent = 0 AND suppressed = 0 ORDER BY id LIMIT ?1"
            }
            Channel::Webhook => {
                "SELECT id, event FROM events WHERE webhook_sent = 0 AND suppressed = 0 ORDER BY id LIMIT ?1"
            }
        };
        let rows: Vec<(i64, String)> = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.query_map(params![limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|(id, e)| {
                Ok(Unsent {
                    id,
                    event: self.json("events.event", &e)?,
                    payload: e.into_bytes(),
                })
            })
            .collect()
    }

    fn mark_sent(&mut self, channel: Channel, id: i64) -> Result<(), StoreError> {
        let sql = match channel {
            Channel::Mqtt => "UPDATE events SET sent = 1 WHERE id = ?1",
            Channel::Webhook => "UPDATE events SET webhook_sent = 1 WHERE id = ?1",
        };
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(params![id]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn violations(&mut self, f: &Filter) -> Result<Vec<Violation>, StoreError> {
        type Row = (
            String,
            String,
            String,
            String,
            i64,
            i64,
            Option<String>,
            Option<i64>,
            Option<String>,
            bool,
            String,
            Option<String>,
        );
        let rows: Vec<Row> = self
            .conn
            .prepare_cached(
                "SELECT violation_id, thing, profile, behavior, start_ms, last_violation_ms,
                 last_value, end_ms, end_type, suppressed, verification_state, verification_description
                 FROM violations
                 WHERE (?1 = 0 OR end_ms IS NULL) AND (?2 IS NULL OR thing = ?2)
                   AND (?3 IS NULL OR profile = ?3)
                 ORDER BY start_ms, violation_id",
            )
            .and_then(|mut s| {
                s.query_map(params![f.active_only, f.thing, f.profile], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                        r.get(11)?,
                    ))
                })?
                .collect()
            })
            .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|r| {
                Ok(Violation {
                    violation_id: r.0,
                    thing_name: r.1,
                    security_profile_name: r.2,
                    behavior: self.json("violations.behavior", &r.3)?,
                    violation_start_time: r.4 as u64,
                    last_violation_time: r.5 as u64,
                    last_violation_value: r
                        .6
                        .map(|v| self.json("violations.last_value", &v))
                        .transpose()?,
                    violation_end_time: r.7.map(|v| v as u64),
                    end_event_type: r.8,
                    suppressed: r.9,
                    verification_state: r.10,
                    verification_state_description: r.11,
                })
            })
            .collect()
    }

    fn verify(
        &mut self,
        violation_id: &str,
        state: &str,
        description: Option<&str>,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE violations SET verification_state = ?2, verification_description = ?3
                 WHERE violation_id = ?1",
                params![violation_id, state, description],
            )
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    fn prune(
        &mut self,
        history_before_ms: u64,
        reports_before_ms: u64,
    ) -> Result<usize, StoreError> {
        let h = ms(history_before_ms);
        let r = ms(reports_before_ms);
        let n = self
            .conn
            .execute(
                "DELETE FROM violations WHERE end_ms IS NOT NULL AND end_ms < ?1",
                params![h],
            )
            .and_then(|a| {
                let b = self.conn.execute(
                    "DELETE FROM events WHERE ((sent = 1 AND webhook_sent = 1) OR suppressed = 1) AND time_ms < ?1",
                    params![h],
                )?;
                let c = self
                    .conn
                    .execute("DELETE FROM reports WHERE time_ms < ?1", params![r])?;
                let d = self
                    .conn
                    .execute("DELETE FROM samples WHERE window_start_ms < ?1", params![r])?;
                Ok(a + b + c + d)
            })
            .map_err(|e| self.err(e))?;
        Ok(n)
    }
}
