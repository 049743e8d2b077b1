//! The learned models of ML behaviors on disk (`models.json`, docs/detect.md): read at start
//! with each model checked, written hourly and at stop and reload, never every cycle (flash).

use std::path::Path;

use crate::detect::SavedModel;
use crate::detect::learn::persist;
use crate::state::{MODELS_FILE, State};

/// Models are written at most this often while running (and always at stop and reload).
pub(super) const SAVE_EVERY_MS: u64 = 3600 * 1000;

/// The saved models in state directory `dir` that are intact. A file or a model that cannot be
/// read is an error in the log naming the file (and the behavior); those learn again.
pub fn load(dir: &Path) -> Vec<SavedModel> {
    let path = dir.join(MODELS_FILE);
    let read = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => Err(e.to_string()),
        Ok(bytes) => serde_json::from_slice::<Vec<SavedModel>>(&bytes).map_err(|e| e.to_string()),
    };
    let models = match read {
        Ok(models) => models,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "ML models file unreadable or damaged; every ML behavior learns again from scratch");
            return Vec::new();
        }
    };
    let intact = |m: &SavedModel| match persist::from_hex(&m.model) {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(path = %path.display(), profile = %m.profile, behavior = %m.behavior, error = %e,
                "damaged ML model; this behavior learns again from scratch");
            false
        }
    };
    models.into_iter().filter(intact).collect()
}

/// When the models were last written, by report time.
#[derive(Debug, Default)]
pub(super) struct Saver {
    last_ms: Option<u64>,
}

impl Saver {
    /// Starts the hourly clock at `now_ms` (a model restored is on disk already).
    pub(super) fn starting(now_ms: u64) -> Saver {
        Saver {
            last_ms: Some(now_ms),
        }
    }

    /// Writes `models` when `force`d or an hour has passed since the last write.
    pub(super) fn save(&mut self, state: &State, models: &[SavedModel], now_ms: u64, force: bool) {
        let due = self
            .last_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= SAVE_EVERY_MS);
        if models.is_empty() || !(force || due) {
            return;
        }
        match state.save_models(&models) {
            Ok(()) => self.last_ms = Some(now_ms),
            Err(e) => {
                tracing::error!(error = %e, "cannot persist the ML models; a restart loses what they learned since the last write")
            }
        }
    }
}

#[cfg(test)]
#[path = "models_tests.rs"]
mod tests;
