//! Small files in the state directory, each written atomically (temp file, fsync, rename,
//! fsync of the directory): report ids, the alarm engine's state, its learned ML models and the
//! alarm outbox (`outbox`); the counter baseline is rewritten in place in A/B slots (`slots`). Holds no
//! policy: the daemon decides when to write what.

pub mod outbox;
pub mod slots;

pub use outbox::{Limits, Message, Outbox, Pushed};

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Serialize, de::DeserializeOwned};

/// The wall clock in epoch milliseconds, the unit of report ids (0 before 1970).
pub fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Largest report id we hand out: JSON consumers lose integer precision above 2^53−1
/// (protocol doc §4, report_id row).
pub const MAX_REPORT_ID: u64 = (1 << 53) - 1;

const REPORT_ID_FILE: &str = "report_id";
/// Before the A/B slots: read once (migration), never written.
const LEGACY_BASELINE_FILE: &str = "baseline.json";
const BASELINE_FILE: &str = "baseline.slots";
const ALARMS_FILE: &str = "alarms.json";
/// The learned models of ML behaviors, written apart from `alarms.json` and far less often.
pub const MODELS_FILE: &str = "models.json";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("report id space exhausted: last id {last} is at the 2^53-1 limit")]
    Exhausted { last: u64 },
}

/// A report id, and why it is not on disk when the write failed.
#[derive(Debug)]
pub struct NextId {
    pub id: u64,
    pub unsaved: Option<StateError>,
}

/// The agent's persistent state, rooted at one directory.
#[derive(Debug)]
pub struct State {
    dir: PathBuf,
    last_id: Option<u64>,
}

impl State {
    /// Opens (creating if needed) the state directory and reads the last report id.
    ///
    /// A report id file that is not an integer, or holds an id at or above `MAX_REPORT_ID`
    /// (disk damage, a hand edit), must not keep the agent from reporting: see
    /// `read_last_id`. The next id overwrites the file.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        fs::create_dir_all(dir).map_err(|source| StateError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(REPORT_ID_FILE);
        let last_id = match fs::read(&path) {
            Ok(bytes) => Some(read_last_id(&path, &bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(StateError::Read { path, source }),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            last_id,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last report id handed out, if any.
    pub fn last_report_id(&self) -> Option<u64> {
        self.last_id
    }

    /// Hands out the next report id: epoch milliseconds, forced strictly above the last id
    /// (protocol doc §1.3, §10), persisted before it is returned so that a restart or a clock
    /// step backwards never repeats or lowers it. When the write fails (a full or read-only
    /// disk) the id is still handed out, rising in memory, with the write error beside it:
    /// a full disk must not stop the reports. Only an exhausted id space is an error.
    pub fn next_report_id(&mut self, now_ms: u64) -> Result<NextId, StateError> {
        let id = match self.last_id {
            Some(last) if last >= MAX_REPORT_ID => return Err(StateError::Exhausted { last }),
            Some(last) => now_ms.max(last + 1),
            None => now_ms.max(1),
        }
        .min(MAX_REPORT_ID);
        let unsaved = write_atomic(&self.dir, REPORT_ID_FILE, format!("{id}\n").as_bytes()).err();
        self.last_id = Some(id);
        Ok(NextId { id, unsaved })
    }

    /// Loads the persisted counter baseline record (JSON in `slots`), `None` when there is
    /// none yet; a `baseline.json` left by an older version is read when no slot is valid.
    pub fn load_baseline<T: DeserializeOwned>(&self) -> Result<Option<T>, StateError> {
        let path = self.dir.join(BASELINE_FILE);
        match slots::read(&path)? {
            Some((_, bytes)) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StateError::Corrupt {
                        path,
                        detail: e.to_string(),
                    })
            }
            None => self.load_json(LEGACY_BASELINE_FILE),
        }
    }

    /// Persists the counter baseline record in place (`slots`): on a full disk it still
    /// goes through once the slot file exists, where an atomic rename would need new blocks.
    pub fn save_baseline<T: Serialize>(&self, baseline: &T) -> Result<(), StateError> {
        let path = self.dir.join(BASELINE_FILE);
        let bytes = serde_json::to_vec(baseline).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        slots::write(&path, &bytes)
    }

    /// Keeps the last report id at least `last` (an id handed out in memory that the disk
    /// may not have taken), so a reload never hands out a lower one.
    pub fn keep_above(&mut self, last: Option<u64>) {
        self.last_id = self.last_id.max(last);
    }

    /// Loads the alarm engine's saved state (JSON), `None` when there is none yet.
    pub fn load_alarms<T: DeserializeOwned>(&self) -> Result<Option<T>, StateError> {
        self.load_json(ALARMS_FILE)
    }

    /// Persists the alarm engine's state atomically, so a restart neither repeats an
    /// `in-alarm` nor loses a clear.
    pub fn save_alarms<T: Serialize>(&self, alarms: &T) -> Result<(), StateError> {
        self.save_json(ALARMS_FILE, alarms)
    }

    /// Persists the ML models atomically.
    pub fn save_models<T: Serialize>(&self, models: &T) -> Result<(), StateError> {
        self.save_json(MODELS_FILE, models)
    }

    fn load_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StateError> {
        let path = self.dir.join(name);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StateError::Corrupt {
                        path,
                        detail: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Read { path, source }),
        }
    }

    fn save_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StateError::Corrupt {
            path: self.dir.join(name),
            detail: e.to_string(),
        })?;
        write_atomic(&self.dir, name, &bytes)
    }
}

/// The last id in a report id file's `bytes`. Damage (not an integer, or an id at or above
/// `MAX_REPORT_ID`, which would leave no id to hand out) is logged as an error and the file's
/// modification time stands in for the last id (ids are epoch ms written at that moment), so
/// new ids stay above the old ones unless the clock was wrong then.
fn read_last_id(path: &Path, bytes: &[u8]) -> u64 {
    let parsed = std::str::from_utf8(bytes)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    let problem = match parsed {
        Some(id) if id < MAX_REPORT_ID => return id,
        Some(_) => "at or above the 2^53-1 cap",
        None => "not an integer",
    };
    // Below the cap, so that one more id is always left.
    let floor = modified_ms(path).min(MAX_REPORT_ID - 1);
    tracing::error!(
        path = %path.display(),
        content = %String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).trim(),
        floor,
        problem,
        "damaged report id file; continuing above its modification time"
    );
    floor
}

/// A file's modification time in epoch milliseconds (0 when unknown).
fn modified_ms(path: &Path) -> u64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

/// Writes `dir/name` so that a crash leaves either the old or the new content, never a mix.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StateError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let werr = |source| StateError::Write {
        path: path.clone(),
        source,
    };
    let mut file = fs::File::create(&tmp).map_err(werr)?;
    file.write_all(bytes).map_err(werr)?;
    file.sync_all().map_err(werr)?;
    drop(file);
    fs::rename(&tmp, &path).map_err(werr)?;
    // Make the rename itself durable; a directory that cannot be opened is not fatal.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_rise_across_reopen_and_clock_steps() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        assert_eq!(s.next_report_id(1_000).unwrap().id, 1_000);
        assert_eq!(s.next_report_id(1_000).unwrap().id, 1_001);
        // Clock stepped backwards.
        assert_eq!(s.next_report_id(500).unwrap().id, 1_002);
        drop(s);
        let mut s = State::open(dir.path()).unwrap();
        assert_eq!(s.last_report_id(), Some(1_002));
        assert_eq!(s.next_report_id(10).unwrap().id, 1_003);
        assert_eq!(s.next_report_id(5_000).unwrap().id, 5_000);
    }

    #[test]
    fn corrupt_id_file_does_not_stop_reporting_and_ids_stay_above_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REPORT_ID_FILE);
        fs::write(&path, b"garb\xffage").unwrap();
        let written = modified_ms(&path);
        assert!(written > 0);
        let mut s = State::open(dir.path()).unwrap();
        assert_eq!(s.last_report_id(), Some(written));
        // A clock far behind the damaged file's time cannot go below it.
        let id = s.next_report_id(5).unwrap().id;
        assert_eq!(id, written + 1);
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{id}\n"));
        assert_eq!(State::open(dir.path()).unwrap().last_report_id(), Some(id));
    }

    #[test]
    fn an_id_that_cannot_be_written_is_still_handed_out_and_rises() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        assert!(s.next_report_id(1_000).unwrap().unsaved.is_none());
        // A directory where the temp file goes makes every write fail, even for root.
        fs::create_dir(dir.path().join(".report_id.tmp")).unwrap();
        let next = s.next_report_id(900).unwrap();
        assert_eq!(next.id, 1_001);
        let err = next
            .unsaved
            .expect("the failed write is reported")
            .to_string();
        assert!(err.contains("report_id"), "{err}");
        assert_eq!(s.next_report_id(900).unwrap().id, 1_002);
        // The disk still holds the last id it could take.
        assert_eq!(
            State::open(dir.path()).unwrap().last_report_id(),
            Some(1_000)
        );
    }

    #[test]
    fn id_space_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        assert_eq!(s.next_report_id(u64::MAX).unwrap().id, MAX_REPORT_ID);
        assert!(matches!(
            s.next_report_id(0),
            Err(StateError::Exhausted { .. })
        ));
    }

    #[test]
    fn an_id_file_at_the_cap_is_damage_and_reports_go_on_above_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REPORT_ID_FILE);
        for content in [MAX_REPORT_ID, MAX_REPORT_ID + 1, u64::MAX] {
            fs::write(&path, format!("{content}\n")).unwrap();
            let written = modified_ms(&path);
            let mut s = State::open(dir.path()).unwrap();
            assert_eq!(s.last_report_id(), Some(written), "{content}");
            let id = s.next_report_id(5).unwrap().id;
            assert_eq!(id, written + 1);
            assert_eq!(fs::read_to_string(&path).unwrap(), format!("{id}\n"));
        }
        // One below the cap is a valid last id: the next one is the cap itself.
        fs::write(&path, format!("{}\n", MAX_REPORT_ID - 1)).unwrap();
        let mut s = State::open(dir.path()).unwrap();
        assert_eq!(s.next_report_id(5).unwrap().id, MAX_REPORT_ID);
    }

    #[test]
    fn baseline_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        assert_eq!(s.load_baseline::<Vec<u64>>().unwrap(), None);
        s.save_baseline(&vec![1u64, 2, 3]).unwrap();
        assert_eq!(s.load_baseline::<Vec<u64>>().unwrap(), Some(vec![1, 2, 3]));
        // A full disk (no new blocks) takes the rewrite in place: no temp file is made.
        fs::create_dir(dir.path().join(".baseline.slots.tmp")).unwrap();
        s.save_baseline(&vec![4u64]).unwrap();
        assert_eq!(s.load_baseline::<Vec<u64>>().unwrap(), Some(vec![4]));
    }

    #[test]
    fn a_baseline_json_from_an_older_version_is_read_until_the_first_save() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LEGACY_BASELINE_FILE), b"[7]").unwrap();
        let s = State::open(dir.path()).unwrap();
        assert_eq!(s.load_baseline::<Vec<u64>>().unwrap(), Some(vec![7]));
        s.save_baseline(&vec![8u64]).unwrap();
        assert_eq!(s.load_baseline::<Vec<u64>>().unwrap(), Some(vec![8]));
    }

    #[test]
    fn alarm_state_round_trips_and_damage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        assert_eq!(s.load_alarms::<Vec<String>>().unwrap(), None);
        s.save_alarms(&vec!["a".to_string()]).unwrap();
        assert_eq!(
            s.load_alarms::<Vec<String>>().unwrap(),
            Some(vec!["a".to_string()])
        );
        fs::write(dir.path().join(ALARMS_FILE), b"{not json").unwrap();
        let err = s.load_alarms::<Vec<String>>().unwrap_err().to_string();
        assert!(err.contains("alarms.json"), "{err}");
    }
}
