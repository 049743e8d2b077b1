//! The alarm outbox on disk: messages (topic + payload) kept, oldest first, until the broker
//! acknowledges them, bounded in count and bytes. Knows nothing of MQTT or of what an alarm is.
//!
//! The file is JSON lines, one message per line, rewritten atomically, so a crash leaves the
//! old or the new queue: at once for new messages, and once per batch of acknowledged ones
//! (`save_if_changed`), so that a backlog drained after an outage is not rewritten per message
//! on flash; a crash before that write sends the batch again (delivery is at least once). A line that does not parse (disk damage, a hand
//! edit) is skipped and counted in a log line; the intact lines are kept. The bound is
//! enforced on every push and at open: the oldest messages go first, each drop counted.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{StateError, write_atomic};

const OUTBOX_FILE: &str = "outbox.jsonl";

/// One message waiting for its PUBACK. The payload is text (alarm events are JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub topic: String,
    pub payload: String,
}

impl Message {
    /// Bytes the message takes in the bound (topic + payload).
    fn size(&self) -> usize {
        self.topic.len() + self.payload.len()
    }
}

/// How much the outbox may hold; the oldest messages are dropped beyond either limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_messages: usize,
    pub max_bytes: usize,
}

impl Default for Limits {
    /// 1 000 alarm events of about 1 KiB fit; at one event per 5-minute report that is days
    /// of a broker outage, and the file stays small on a gateway's flash.
    fn default() -> Self {
        Self {
            max_messages: 1000,
            max_bytes: 1024 * 1024,
        }
    }
}

/// What one push did to the queue.
#[derive(Debug, Default)]
pub struct Pushed {
    /// Messages dropped to make room (oldest first), including a message too big alone.
    pub dropped: usize,
    /// Why the queue is not on disk, when the write failed (it is still kept in memory).
    pub unsaved: Option<StateError>,
}

/// The bounded queue of alarm messages, mirrored in `dir/outbox.jsonl`.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    limits: Limits,
    messages: VecDeque<Message>,
    bytes: usize,
    dropped_total: u64,
    /// Messages were removed since the file was last written.
    unsaved_removals: bool,
}

impl Outbox {
    /// Reads the queue left by an earlier run. Never fails on content: damaged lines are
    /// skipped with an error log line; an unreadable file is logged and the queue starts empty.
    pub fn open(dir: &Path, limits: Limits) -> Outbox {
        let path = dir.join(OUTBOX_FILE);
        let mut outbox = Outbox {
            dir: dir.to_path_buf(),
            limits,
            messages: VecDeque::new(),
            bytes: 0,
            dropped_total: 0,
            unsaved_removals: false,
        };
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return outbox,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "alarm outbox unreadable; starting with an empty one");
                return outbox;
            }
        };
        let mut damaged = 0usize;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Message>(line) {
                Ok(m) => {
                    outbox.bytes += m.size();
                    outbox.messages.push_back(m);
                }
                Err(_) => damaged += 1,
            }
        }
        if damaged > 0 {
            tracing::error!(
                path = %path.display(),
                damaged_lines = damaged,
                kept = outbox.messages.len(),
                "alarm outbox damaged; the intact messages are kept"
            );
        }
        let dropped = outbox.enforce_bound();
        if dropped > 0 || damaged > 0 {
            outbox.log_drops(dropped);
            if let Err(e) = outbox.save() {
                tracing::warn!(error = %e, "cannot rewrite the recovered alarm outbox");
            }
        }
        outbox
    }

    /// Appends messages (in order), drops the oldest beyond the bound, and writes the queue.
    /// Drops are counted in the result and logged with the running total.
    pub fn push(&mut self, new: impl IntoIterator<Item = Message>) -> Pushed {
        for m in new {
            self.bytes += m.size();
            self.messages.push_back(m);
        }
        let dropped = self.enforce_bound();
        self.log_drops(dropped);
        Pushed {
            dropped,
            unsaved: self.save().err(),
        }
    }

    /// The oldest message, the next one to send.
    pub fn front(&self) -> Option<&Message> {
        self.messages.front()
    }

    /// Removes the oldest message (the broker acknowledged it), in memory only: the caller
    /// writes the queue with `save_if_changed` after the batch.
    pub fn pop_front(&mut self) {
        if let Some(m) = self.messages.pop_front() {
            self.bytes -= m.size();
            self.unsaved_removals = true;
        }
    }

    /// Writes the queue when messages were removed since the last write.
    pub fn save_if_changed(&mut self) -> Result<(), StateError> {
        if !self.unsaved_removals {
            return Ok(());
        }
        self.save()
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Messages dropped by the bound since this outbox was opened.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// Drops the oldest messages until both limits hold; returns how many went.
    fn enforce_bound(&mut self) -> usize {
        let mut dropped = 0;
        while self.messages.len() > self.limits.max_messages || self.bytes > self.limits.max_bytes {
            let Some(m) = self.messages.pop_front() else {
                break;
            };
            self.bytes -= m.size();
            dropped += 1;
        }
        self.dropped_total += dropped as u64;
        dropped
    }

    fn log_drops(&self, dropped: usize) {
        if dropped > 0 {
            tracing::warn!(
                dropped,
                dropped_total = self.dropped_total,
                max_messages = self.limits.max_messages,
                max_bytes = self.limits.max_bytes,
                "alarm outbox full; the oldest messages were dropped"
            );
        }
    }

    fn save(&mut self) -> Result<(), StateError> {
        let mut text = Vec::with_capacity(self.bytes + 32 * self.messages.len());
        for m in &self.messages {
            serde_json::to_writer(&mut text, m).map_err(|e| StateError::Corrupt {
                path: self.dir.join(OUTBOX_FILE),
                detail: e.to_string(),
            })?;
            text.push(b'\n');
        }
        write_atomic(&self.dir, OUTBOX_FILE, &text)?;
        self.unsaved_removals = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: usize) -> Message {
        Message {
            topic: "t/alarms".to_string(),
            payload: format!("{{\"n\":{n}}}"),
        }
    }

    fn ns(o: &Outbox) -> Vec<String> {
        o.messages.iter().map(|m| m.payload.clone()).collect()
    }

    #[test]
    fn messages_survive_a_reopen_until_popped() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), Limits::default());
        assert!(o.is_empty());
        let pushed = o.push([msg(1), msg(2), msg(3)]);
        assert_eq!(pushed.dropped, 0);
        assert!(pushed.unsaved.is_none());
        drop(o);
        let mut o = Outbox::open(dir.path(), Limits::default());
        assert_eq!(ns(&o), ["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"]);
        assert_eq!(o.front(), Some(&msg(1)));
        o.pop_front();
        o.pop_front();
        // Not written yet: a crash now sends both again.
        assert_eq!(ns(&Outbox::open(dir.path(), Limits::default())).len(), 3);
        o.save_if_changed().unwrap();
        let o = Outbox::open(dir.path(), Limits::default());
        assert_eq!(ns(&o), ["{\"n\":3}"]);
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_messages: 3,
            max_bytes: 1 << 20,
        };
        let mut o = Outbox::open(dir.path(), limits);
        assert_eq!(o.push([msg(1), msg(2)]).dropped, 0);
        assert_eq!(o.push([msg(3), msg(4), msg(5)]).dropped, 2);
        assert_eq!(ns(&o), ["{\"n\":3}", "{\"n\":4}", "{\"n\":5}"]);
        assert_eq!(o.push([msg(6)]).dropped, 1);
        assert_eq!(o.dropped_total(), 3);
        let o = Outbox::open(dir.path(), limits);
        assert_eq!(ns(&o), ["{\"n\":4}", "{\"n\":5}", "{\"n\":6}"]);
    }

    #[test]
    fn the_byte_bound_drops_the_oldest_too() {
        let dir = tempfile::tempdir().unwrap();
        let size = msg(1).size();
        let limits = Limits {
            max_messages: 100,
            max_bytes: 2 * size,
        };
        let mut o = Outbox::open(dir.path(), limits);
        assert_eq!(o.push([msg(1), msg(2), msg(3)]).dropped, 1);
        assert_eq!(ns(&o), ["{\"n\":2}", "{\"n\":3}"]);
        // A message bigger than the whole bound cannot be kept: it goes, with the others.
        let huge = Message {
            topic: "t".into(),
            payload: "x".repeat(3 * size),
        };
        assert_eq!(o.push([huge]).dropped, 3);
        assert!(o.is_empty());
        assert_eq!(o.dropped_total(), 4);
    }

    #[test]
    fn a_smaller_bound_at_open_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), Limits::default());
        o.push((1..=5).map(msg));
        let small = Limits {
            max_messages: 2,
            max_bytes: 1 << 20,
        };
        let o = Outbox::open(dir.path(), small);
        assert_eq!(ns(&o), ["{\"n\":4}", "{\"n\":5}"]);
        assert_eq!(o.dropped_total(), 3);
    }

    #[test]
    fn damaged_lines_are_skipped_and_the_intact_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(OUTBOX_FILE);
        let good = serde_json::to_string(&msg(1)).unwrap();
        let also = serde_json::to_string(&msg(2)).unwrap();
        let mut text = format!("{good}\n{{\"topic\":\"t\",\"pay").into_bytes();
        text.extend_from_slice(b"\xff\n\n");
        text.extend_from_slice(format!("{also}\ngarbage").as_bytes());
        fs::write(&path, text).unwrap();
        let o = Outbox::open(dir.path(), Limits::default());
        assert_eq!(ns(&o), ["{\"n\":1}", "{\"n\":2}"]);
        // The recovered queue is written back: the damage is gone from the file.
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{good}\n{also}\n")
        );
    }

    #[test]
    fn an_unwritable_state_dir_keeps_messages_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), Limits::default());
        fs::create_dir(dir.path().join(".outbox.jsonl.tmp")).unwrap();
        let pushed = o.push([msg(1)]);
        let err = pushed.unsaved.expect("write error reported").to_string();
        assert!(err.contains("outbox.jsonl"), "{err}");
        assert_eq!(o.len(), 1);
        o.pop_front();
        assert!(o.save_if_changed().is_err());
        assert!(o.is_empty());
    }
}
