//! A stand-in for systemd's notify socket: a datagram socket read all the time (as systemd
//! does) that records every message the agent sends (READY=1, STATUS=…, WATCHDOG=1, …) and
//! when it arrived.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct NotifySocket {
    pub path: PathBuf,
    inbox: Arc<Mutex<Vec<(Instant, String)>>>,
    done: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl NotifySocket {
    pub fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let inbox = Arc::new(Mutex::new(Vec::<(Instant, String)>::new()));
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (inbox, done) = (inbox.clone(), done.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !done.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                        inbox.lock().unwrap().push((Instant::now(), m));
                    }
                }
            })
        };
        NotifySocket {
            path,
            inbox,
            done,
            reader: Some(reader),
        }
    }

    /// Every message so far, oldest first.
    pub fn messages(&self) -> Vec<String> {
        self.timed().into_iter().map(|(_, m)| m).collect()
    }

    /// Every message so far with its arrival time, oldest first.
    pub fn timed(&self) -> Vec<(Instant, String)> {
        self.inbox.lock().unwrap().clone()
    }

    /// The last `STATUS=` line, without the prefix.
    pub fn last_status(&self) -> Option<String> {
        self.messages()
            .iter()
            .rev()
            .find_map(|m| m.strip_prefix("STATUS=").map(str::to_string))
    }

    /// Stops reading (after what is in flight has arrived) and returns everything received.
    pub fn close(mut self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(300));
        self.stop();
        self.messages()
    }

    fn stop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop();
    }
}
