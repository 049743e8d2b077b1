//! SQLite's alert outbox: the `events` table, position = row id, idempotent by (violation_id,
//! violationEventType); the `sent` and `webhook_sent` flags are the two sinks' cursors.

use rusqlite::{Connection, params};

use super::sqlite::{backend, ms, text};
use super::{Outbox, Pending, Recorded, Sink, Sqlite, StoreError};

/// Appends events whose (violation, type) is not in the outbox yet.
pub(super) fn append(tx: &Connection, events: &[Recorded]) -> rusqlite::Result<()> {
    for Recorded {
        event: e,
        suppressed,
    } in events
    {
        tx.prepare_cached(
            "INSERT INTO events (violation_id, time_ms, event, suppressed)
             SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM events
               WHERE violation_id = ?1 AND json_extract(event, '$.violationEventType') = ?5)",
        )?
        .execute(params![
            e.violation_id,
            ms(e.violation_event_time),
            text(e),
            suppressed,
            e.violation_event_type.name()
        ])?;
    }
    Ok(())
}

impl Outbox for Sqlite {
    fn append(&mut self, events: &[Recorded]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sp = self.conn.savepoint().map_err(|e| backend(&path, e))?;
        append(&sp, events).map_err(|e| backend(&path, e))?;
        sp.commit().map_err(|e| backend(&path, e))
    }

    fn pending(&mut self, sink: Sink, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let sql = match sink {
            Sink::Mqtt => {
                "SELECT id, event FROM events WHERE sent = 0 AND suppressed = 0 ORDER BY id LIMIT ?1"
            }
            Sink::Webhook => {
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
                Ok(Pending {
                    position: id as u64,
                    event: self.json("events.event", &e)?,
                    payload: e.into_bytes(),
                })
            })
            .collect()
    }

    fn ack(&mut self, sink: Sink, position: u64) -> Result<(), StoreError> {
        // The flags are the cursor: every unsent row up to `position` is marked.
        let sql = match sink {
            Sink::Mqtt => {
                "UPDATE events SET sent = 1 WHERE sent = 0 AND suppressed = 0 AND id <= ?1"
            }
            Sink::Webhook => {
                "UPDATE events SET webhook_sent = 1 WHERE webhook_sent = 0 AND suppressed = 0 AND id <= ?1"
            }
        };
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(params![ms(position)]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}
