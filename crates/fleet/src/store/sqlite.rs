//! The embedded store: one SQLite file in WAL mode (synchronous=NORMAL: a committed step
//! survives a process crash; a power cut may lose the last commits, which the broker then
//! redelivers because they were not acknowledged). Opening, samples, the violation index and
//! pruning; records and the outbox are in `sqlite_records.rs`, the registry in
//! `sqlite_things.rs`, the metric history and event log in `sqlite_history.rs`.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Filter, Samples, SourceCursors, StoreError, Violation, ViolationIndex};

const SCHEMA: &str = include_str!("schema.sql");

pub struct Sqlite {
    pub(super) conn: Connection,
    pub(super) path: String,
}

impl Sqlite {
    /// Opens (creating) the database file and its schema. A database from before record
    /// versions (issue #16) gets the `things.version` column, 0 for every thing; one from
    /// before payload digests (issue #17) gets `reports.digest`, NULL for the answers kept.
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        let name = path.display().to_string();
        let err = |source| backend(&name, source);
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        let added = [
            ("things", "version", "INTEGER NOT NULL DEFAULT 0"),
            ("reports", "digest", "BLOB"),
        ];
        for (table, column, kind) in added {
            let present: bool = conn
                .query_row(
                    "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
                    params![table, column],
                    |r| r.get(0),
                )
                .map_err(err)?;
            if !present {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))
                    .map_err(err)?;
            }
        }
        Ok(Sqlite { conn, path: name })
    }

    pub(super) fn err(&self, source: rusqlite::Error) -> StoreError {
        backend(&self.path, source)
    }

    pub(super) fn json<T: serde::de::DeserializeOwned>(
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

pub(super) fn backend(path: &str, source: rusqlite::Error) -> StoreError {
    StoreError::Backend {
        path: path.to_string(),
        source: Box::new(source),
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

impl SourceCursors for Sqlite {
    fn cursor(&mut self, source: &str) -> Result<Option<(String, u64)>, StoreError> {
        let row: Option<(String, i64)> = self
            .conn
            .prepare_cached("SELECT instance, seq FROM source_cursors WHERE source = ?1")
            .and_then(|mut s| {
                s.query_row(params![source], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.err(e))?;
        Ok(row.map(|(i, s)| (i, s as u64)))
    }

    fn set_cursor(&mut self, source: &str, instance: &str, seq: u64) -> Result<(), StoreError> {
        let path = self.path.clone();
        self.group().map_err(|e| backend(&path, e))?;
        self.conn
            .prepare_cached(
                "INSERT INTO source_cursors (source, instance, seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT (source) DO UPDATE SET instance = ?2, seq = ?3",
            )
            .and_then(|mut s| s.execute(params![source, instance, ms(seq)]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

impl Samples for Sqlite {
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
}

impl ViolationIndex for Sqlite {
    fn violations(&mut self, f: &Filter) -> Result<Vec<Violation>, StoreError> {
        self.select_violations(
            "SELECT violation_id, thing, profile, behavior, start_ms, last_violation_ms,
             last_value, end_ms, end_type, suppressed, verification_state, verification_description
             FROM violations
             WHERE (?1 = 0 OR end_ms IS NULL) AND (?2 IS NULL OR thing = ?2)
               AND (?3 IS NULL OR profile = ?3)
             ORDER BY start_ms, violation_id",
            params![f.active_only, f.thing, f.profile],
        )
    }

    fn violations_newest(
        &mut self,
        f: &Filter,
        after: Option<(u64, &str)>,
        limit: usize,
    ) -> Result<Vec<Violation>, StoreError> {
        use rusqlite::types::Value;
        // Only the conditions asked for: the planner then takes the partial index of active
        // alarms, or a thing's index, and walks it newest first.
        let mut conds = Vec::new();
        let mut args: Vec<Value> = Vec::new();
        if f.active_only {
            conds.push("end_ms IS NULL");
        }
        if let Some(t) = &f.thing {
            conds.push("thing = ?");
            args.push(Value::Text(t.clone()));
        }
        if let Some(p) = &f.profile {
            conds.push("profile = ?");
            args.push(Value::Text(p.clone()));
        }
        if let Some((t, id)) = after {
            conds.push("(start_ms, violation_id) < (?, ?)");
            args.push(Value::Integer(ms(t)));
            args.push(Value::Text(id.to_string()));
        }
        args.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        // Named, not left to the planner: without statistics it takes `violations_end` for
        // `end_ms IS NULL` and sorts every active alarm (30 ms at 10 000 of them).
        let index = match (&f.thing, f.active_only) {
            (Some(_), _) => "INDEXED BY violations_thing",
            (None, true) => "INDEXED BY violations_active",
            (None, false) => "",
        };
        let sql = format!(
            "SELECT violation_id, thing, profile, behavior, start_ms, last_violation_ms,
             last_value, end_ms, end_type, suppressed, verification_state, verification_description
             FROM violations {index} {filter} ORDER BY start_ms DESC, violation_id DESC LIMIT ?"
        );
        self.select_violations(&sql, rusqlite::params_from_iter(args))
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
}

impl Sqlite {
    /// Runs a `SELECT` of the twelve violation columns in `violations`' order.
    fn select_violations(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<Violation>, StoreError> {
        type Row = (String, String, String, String, i64, i64, Option<String>);
        type Tail = (Option<i64>, Option<String>, bool, String, Option<String>);
        let rows: Vec<(Row, Tail)> = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.query_map(args, |r| {
                    let row = (
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    );
                    Ok((
                        row,
                        (r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?),
                    ))
                })?
                .collect()
            })
            .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|(r, t)| {
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
                    violation_end_time: t.0.map(|v| v as u64),
                    end_event_type: t.1,
                    suppressed: t.2,
                    verification_state: t.3,
                    verification_state_description: t.4,
                })
            })
            .collect()
    }
}

impl super::Store for Sqlite {
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
                // Not counted: a thing's last rejection is a note, not history.
                self.conn
                    .execute("DELETE FROM rejections WHERE time_ms < ?1", params![r])?;
                Ok(a + b + c + d)
            })
            .map_err(|e| self.err(e))?;
        Ok(n)
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
