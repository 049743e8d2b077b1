//! A network namespace with nothing but its loopback (IPv6 off), for a test whose programs
//! must see only the test's own sockets: a process that lists the host's connections (AWS's
//! Python agent) then lists the test's. Root only; removed on Drop.

use std::sync::atomic::{AtomicU32, Ordering};

use super::netns::{quiet, run, setns};

pub struct Isolated {
    ns: String,
}

impl Isolated {
    /// `None` (with a message saying why the test is skipped) when not root.
    pub fn create() -> Option<Isolated> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: needs root (network namespace); CI runs as root");
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let ns = format!(
            "dti{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &ns]);
        let me = Isolated { ns };
        quiet(&me.ns);
        Some(me)
    }

    /// Moves the calling thread (and every thread and process it starts from now on) into
    /// the namespace: what it starts then speaks over this namespace's loopback only.
    pub fn enter(&self) {
        setns(&self.ns);
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .status();
    }
}
