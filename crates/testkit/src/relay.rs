//! A loopback TCP relay a test can cut: to the process behind it, its server went away
//! (connections reset, new ones closed at once) while everything else stays up.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct State {
    cut: AtomicBool,
    stop: AtomicBool,
    /// Both ends of every relayed connection, to reset them on `cut`.
    open: Mutex<Vec<TcpStream>>,
}

/// Relays 127.0.0.1:`port` to 127.0.0.1:`target` until dropped.
pub struct Relay {
    pub port: u16,
    state: Arc<State>,
}

impl Relay {
    pub fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                if shared.cut.load(Ordering::SeqCst) {
                    let _ = conn.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                relay(&shared, conn, server);
            }
        });
        Relay { port, state }
    }

    /// Resets every relayed connection and closes new ones until `mend`.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        for s in self.state.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn mend(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

/// Copies both ways on two threads; either side closing closes both.
fn relay(state: &State, client: TcpStream, server: TcpStream) {
    let pairs = [(&client, &server), (&server, &client)];
    let mut open = state.open.lock().unwrap();
    for (from, to) in pairs {
        let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
            return;
        };
        open.push(from.try_clone().unwrap());
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.cut();
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_secs(1),
        );
    }
}
