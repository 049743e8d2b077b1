//! Report ids and the counter baseline on disk, each written atomically (temp file, fsync,
//! rename, fsync of the directory). Holds no policy: the daemon decides when to advance.

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
const BASELINE_FILE: &str = "baseline.json";

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

/// The agent's persistent state, rooted at one directory.
#[derive(Debug)]
pub struct State {
    dir: PathBuf,
    last_id: Option<u64>,
}

impl State {
    /// Opens (creating if needed) the state directory and reads the last report id.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        fs::create_dir_all(dir).map_err(|source| StateError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(REPORT_ID_FILE);
        let last_id = match fs::read_to_string(&path) {
            Ok(text) => Some(
                text.trim()
                    .parse::<u64>()
                    .map_err(|e| StateError::Corrupt {
                        path: path.clone(),
                        detail: format!(
                            "expected an integer report id, got {:?}: {e}",
                            text.trim()
                        ),
                    })?,
            ),
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
    /// step backwards never repeats or lowers it.
    pub fn next_report_id(&mut self, now_ms: u64) -> Result<u64, StateError> {
        let id = match self.last_id {
            Some(last) if last >= MAX_REPORT_ID => return Err(StateError::Exhausted { last }),
            Some(last) => now_ms.max(last + 1),
            None => now_ms.max(1),
        }
        .min(MAX_REPORT_ID);
        write_atomic(&self.dir, REPORT_ID_FILE, format!("{id}\n").as_bytes())?;
        self.last_id = Some(id);
        Ok(id)
    }

    /// Loads the persisted counter baseline (JSON), `None` when there is none yet.
    pub fn load_baseline<T: DeserializeOwned>(&self) -> Result<Option<T>, StateError> {
        let path = self.dir.join(BASELINE_FILE);
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

    /// Persists the counter baseline atomically.
    pub fn save_baseline<T: Serialize>(&self, baseline: &T) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(baseline).map_err(|e| StateError::Corrupt {
            path: self.dir.join(BASELINE_FILE),
            detail: e.to_string(),
        })?;
        write_atomic(&self.dir, BASELINE_FILE, &bytes)
    }
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
        assert_eq!(s.next_report_id(1_000).unwrap(), 1_000);
        assert_eq!(s.next_report_id(1_000).unwrap(), 1_001);
        // Clock stepped backwards.
        assert_eq!(s.next_report_id(500).unwrap(), 1_002);
        drop(s);
        let mut s = State::open(dir.path()).unwrap();
        assert_eq!(s.last_report_id(), Some(1_002));
        assert_eq!(s.next_report_id(10).unwrap(), 1_003);
        assert_eq!(s.next_report_id(5_000).unwrap(), 5_000);
    }

    #[test]
    fn corrupt_id_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(REPORT_ID_FILE), "garbage").unwrap();
        let err = State::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("report_id"), "{err}");
        assert!(err.contains("garbage"), "{err}");
    }

    #[test]
    fn id_space_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        assert_eq!(s.next_report_id(u64::MAX).unwrap(), MAX_REPORT_ID);
        assert!(matches!(
            s.next_report_id(0),
            Err(StateError::Exhausted { .. })
        ));
    }

    #[test]
    fn baseline_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        assert_eq!(s.load_baseline::<Vec<u64>>().unwrap(), None);
        s.save_baseline(&vec![1u64, 2, 3]).unwrap();
        assert_eq!(s.load_baseline::<Vec<u64>>().unwrap(), Some(vec![1, 2, 3]));
    }
}
