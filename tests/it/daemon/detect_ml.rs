//! ML Detect in the real daemon: the models are written to `models.json` at stop and a restart
//! continues them; a damaged `models.json` is an error line naming the file, and is rebuilt.
use std::path::{Path, PathBuf};
use std::time::Duration;

use detect_agent::detect::SavedModel;
use detect_agent::detect::learn::persist;
use detect_testkit::agent::{Agent, Setup, config, spawn};
use detect_testkit::{Backend, Broker, Pki, eventually};

struct World {
    _pki: Pki,
    _broker: Broker,
    backend: Backend,
    work: tempfile::TempDir,
    config: PathBuf,
}

async fn world() -> World {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let profile = work.path().join("ml.json");
    let doc = serde_json::json!({"securityProfileName": "ml", "behaviors": [{"name": "tcp-listeners",
        "metric": "aws:num-listening-tcp-ports", "criteria": {"mlDetectionConfig": {"confidenceLevel": "MEDIUM"}}}]});
    std::fs::write(&profile, doc.to_string()).unwrap();
    let extra = format!(
        "[detect]\nprofiles = [{:?}]\n",
        profile.display().to_string()
    );
    let plain = Setup::plain(work.path(), broker.port, &pki.ca, &pki.client_ec, "json", 2);
    let config = config(&Setup {
        extra: &extra,
        ..plain
    });
    World {
        _pki: pki,
        _broker: broker,
        backend,
        work,
        config,
    }
}

impl World {
    /// Runs the agent until the backend has `n` more reports, then stops it (exit 0).
    async fn run_for(&self, n: usize) -> String {
        let agent: Agent = spawn(&self.config, &[]);
        let before = self.backend.received().len();
        let enough = eventually(Duration::from_secs(60), || {
            self.backend.received().len() >= before + n
        })
        .await;
        assert!(enough, "too few reports; {}", agent.log());
        let log = agent.log();
        let (status, _) = agent.stop().await;
        assert!(status.success(), "{log}");
        log
    }

    fn models_file(&self) -> PathBuf {
        self.work.path().join("state").join("models.json")
    }
}

/// Datapoints seen by the one saved model.
fn seen(file: &Path) -> u32 {
    let saved: Vec<SavedModel> = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].behavior, "tcp-listeners");
    persist::from_hex(&saved[0].model).unwrap().seen
}

#[tokio::test]
async fn models_are_saved_at_stop_a_restart_continues_them_and_a_damaged_file_is_named_and_rebuilt()
{
    let w = world().await;
    w.run_for(3).await;
    let first = seen(&w.models_file());
    assert!(first >= 3, "{first}");

    w.run_for(2).await;
    let second = seen(&w.models_file());
    assert!(second >= first + 2, "continued: {first} then {second}");

    std::fs::write(w.models_file(), b"{damaged").unwrap();
    let log = w.run_for(2).await;
    let named = log
        .lines()
        .any(|l| l.contains("ERROR") && l.contains("models.json") && l.contains("damaged"));
    assert!(named, "{log}");
    let third = seen(&w.models_file());
    assert!(
        (2..second).contains(&third),
        "rebuilt from scratch: {third} (was {second})"
    );
}
