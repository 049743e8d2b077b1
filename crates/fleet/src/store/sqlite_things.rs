//! SQLite's thing registry: `things` rows and the `rejections` of things never accepted,
//! listed by name a page at a time (two key walks merged), one thing by its key.

use std::collections::BTreeSet;

use rusqlite::params;

use super::sqlite::{ms, text};
use super::{LastRejection, Registry, Sqlite, StoreError, Thing};

impl Registry for Sqlite {
    fn things(&mut self) -> Result<Vec<Thing>, StoreError> {
        self.select_things(None, i64::MAX)
    }

    fn things_after(
        &mut self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Thing>, StoreError> {
        self.select_things(after, i64::try_from(limit).unwrap_or(i64::MAX))
    }

    fn thing(&mut self, name: &str) -> Result<Option<Thing>, StoreError> {
        Ok(self.things_from(name, "=", 1)?.pop())
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

    fn note_rejection(&mut self, thing: &str, r: &LastRejection) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO rejections (thing, time_ms, code, message) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (thing) DO UPDATE SET time_ms = ?2, code = ?3, message = ?4",
                params![thing, ms(r.time_ms), r.code, r.message],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

type ThingRow = (
    String,
    bool,
    String,
    Option<i64>,
    Option<i64>,
    (Option<i64>, Option<String>, Option<String>),
);

impl Sqlite {
    /// Things by name after `after` (every thing registered or with a rejection kept), at
    /// most `limit`; each side of the union walks its own key from `after`.
    fn select_things(&self, after: Option<&str>, limit: i64) -> Result<Vec<Thing>, StoreError> {
        self.things_from(after.unwrap_or(""), ">", limit)
    }

    /// Things whose name is `op` (`>` or `>=`) `from`, by name, at most `limit`.
    fn things_from(&self, from: &str, op: &str, limit: i64) -> Result<Vec<Thing>, StoreError> {
        // Two walks along their keys (a UNION would be sorted whole), merged here.
        let mut rows = self.thing_rows(
            &format!(
                "SELECT t.name, t.registered, t.groups, t.last_report_id, t.last_report_ms,
                        r.time_ms, r.code, r.message
                 FROM things t LEFT JOIN rejections r ON r.thing = t.name
                 WHERE t.name {op} ?1 ORDER BY t.name LIMIT ?2"
            ),
            from,
            limit,
        )?;
        rows.extend(self.thing_rows(
            &format!(
                "SELECT r.thing, 0, '[]', NULL, NULL, r.time_ms, r.code, r.message
                 FROM rejections r WHERE r.thing {op} ?1
                   AND NOT EXISTS (SELECT 1 FROM things t WHERE t.name = r.thing)
                 ORDER BY r.thing LIMIT ?2"
            ),
            from,
            limit,
        )?);
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        rows.into_iter()
            .map(|(name, registered, groups, id, time, rejected)| {
                let last_rejection = match rejected {
                    (Some(t), Some(code), Some(message)) => Some(LastRejection {
                        time_ms: t as u64,
                        code,
                        message,
                    }),
                    _ => None,
                };
                Ok(Thing {
                    name,
                    registered,
                    groups: self.json("things.groups", &groups)?,
                    last_report_id: id.map(|v| v as u64),
                    last_report_ms: time.map(|v| v as u64),
                    last_rejection,
                })
            })
            .collect()
    }

    fn thing_rows(&self, sql: &str, after: &str, limit: i64) -> Result<Vec<ThingRow>, StoreError> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.query_map(params![after, limit], |r| {
                    let rejected = (r.get(5)?, r.get(6)?, r.get(7)?);
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        rejected,
                    ))
                })?
                .collect()
            })
            .map_err(|e| self.err(e))
    }
}
