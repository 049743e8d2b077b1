//! A mosquitto with passwords, an acl_file and the plugin, and a `mosquitto_sub` on the plugin's
//! topic whose batches the tests read; clients are mosquitto_pub/mosquitto_sub processes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use detect_testkit::broker::{Login, USERS};
use detect_testkit::{Broker, Pki, eventually};
use protocol::broker::{BROKER_EVENTS_TOPIC, Batch, Event};

/// thing-ec may use dev/#; defender-backend may also read (and try to write) $detect/#.
const ACL: &str = "user thing-ec\ntopic readwrite dev/#\n\
                   user defender-backend\ntopic readwrite $detect/#\ntopic readwrite dev/#\n";

pub struct Witness {
    pub broker: Broker,
    /// The plain listener the watcher and `client` use (the broker's own port for PlainPassword).
    pub port: u16,
    pub pki: Pki,
    watcher: Child,
    pub batches: Arc<Mutex<Vec<Batch>>>,
}

impl Witness {
    /// The broker with the plugin (`options`: extra `plugin_opt_…` lines) and the watcher.
    pub async fn start(options: &str) -> Witness {
        Witness::start_with(Login::PlainPassword, options).await
    }

    /// As `start`, the broker's listener logging in with `login`; with TLS, a second, plain
    /// listener with passwords serves the watcher and `client`.
    pub async fn start_with(login: Login, options: &str) -> Witness {
        let pki = Pki::generate();
        let acl = pki.dir.path().join("acl");
        std::fs::write(&acl, ACL).unwrap();
        let plain = match login {
            Login::PlainPassword => None,
            _ => Some(
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port(),
            ),
        };
        let lines = format!(
            "acl_file {}\nplugin {}\n{options}{}",
            acl.display(),
            detect_testkit::bin::mosquitto_plugin().display(),
            plain.map_or_else(String::new, |p| format!("listener {p} 127.0.0.1\n"))
        );
        let broker = Broker::start_with_lines(&pki, login, &lines);
        let port = plain.unwrap_or(broker.port);
        let (user, password) = USERS[1];
        let mut watcher = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args([
                "-u",
                user,
                "-P",
                password,
                "-i",
                "fleet-watch",
                "-t",
                BROKER_EVENTS_TOPIC,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run mosquitto_sub (apt-get install mosquitto-clients)");
        let batches = Arc::new(Mutex::new(Vec::new()));
        let out = watcher.stdout.take().unwrap();
        let sink = batches.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let batch =
                    Batch::decode(line.as_bytes()).unwrap_or_else(|e| panic!("{e}: {line}"));
                sink.lock().unwrap().push(batch);
            }
        });
        let w = Witness {
            broker,
            port,
            pki,
            watcher,
            batches,
        };
        assert!(
            eventually(Duration::from_secs(5), || w.events().iter().any(
                |e| matches!(e, Event::Connect { client_id, .. } if client_id == "fleet-watch")
            ))
            .await,
            "the watcher's own connect never came; log:\n{}",
            w.broker.log()
        );
        w
    }

    /// Every event received so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| b.events.clone())
            .collect()
    }

    /// Waits until `check` holds for the events received so far.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let ok = eventually(Duration::from_secs(10), || check(&self.events())).await;
        assert!(
            ok,
            "{what}: not seen in {:#?}\nlog:\n{}",
            self.events(),
            self.broker.log()
        );
        self.events()
    }

    /// Waits until a denial of client `id` has been seen.
    pub async fn wait_for_denial(&self, id: &str) -> Vec<Event> {
        self.wait_for(&format!("the denial of {id}"), |ev| {
            ev.iter()
                .any(|e| matches!(e, Event::Denied { client_id, .. } if client_id == id))
        })
        .await
    }

    /// Runs mosquitto_pub (or _sub: `tool`) against the broker as `user` with `args`.
    pub fn client(&self, tool: &str, user: (&str, &str), args: &[&str]) -> Output {
        Command::new(tool)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-u",
                user.0,
                "-P",
                user.1,
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"))
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.watcher.kill();
        let _ = self.watcher.wait();
    }
}
