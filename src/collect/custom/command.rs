//! The `command` source: runs argv directly (no shell) in its own process group with stdin
//! from /dev/null, a minimal environment and a deadline; collects stdout up to the cap.
//!
//! Environment: cleared, then only `PATH=/usr/sbin:/usr/bin:/sbin:/bin` (`MIN_PATH`), so a
//! metric never depends on what the agent was started with. When the command exits,
//! anything it left running in its process group is killed; when its deadline passes or its
//! stdout goes over `MAX_OUTPUT_BYTES`, the whole group is killed (SIGKILL to -pgid). A child
//! that leaves the group (setsid) is not followed; systemd's cgroup stops it with the service.

use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{CustomError, MAX_OUTPUT_BYTES};

/// The only environment variable a command gets.
pub const MIN_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// How often running commands are checked (pipes drained, exits noticed).
const POLL: Duration = Duration::from_millis(5);
/// After SIGKILL, how long we wait for the process to be reaped before giving up on it.
const REAP_GRACE: Duration = Duration::from_secs(2);
/// The first this-many bytes of stderr are kept for the warning of a failed command.
const STDERR_KEPT: usize = 512;

/// A started command.
pub struct Running {
    child: Child,
    stdout: ChildStdout,
    stderr: ChildStderr,
    deadline: Instant,
    timeout: Duration,
    out: Vec<u8>,
    err: Vec<u8>,
}

/// Starts `argv` (argv[0] is run as given, no PATH lookup by a shell) to end by
/// `start + timeout`.
pub fn spawn(argv: &[String], start: Instant, timeout: Duration) -> Result<Running, CustomError> {
    let program = argv.first().map(String::as_str).unwrap_or("");
    let spawn_err = |source| CustomError::Spawn {
        program: program.to_string(),
        source,
    };
    let mut child = Command::new(program)
        .args(argv.iter().skip(1))
        .env_clear()
        .env("PATH", MIN_PATH)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(spawn_err)?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        kill_group(&child);
        let _ = child.wait();
        return Err(spawn_err(std::io::Error::other("no pipes")));
    };
    for fd in [stdout.as_raw_fd(), stderr.as_raw_fd()] {
        // SAFETY: fcntl on a pipe fd we own; only adds O_NONBLOCK to its status flags.
        let ok = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
        };
        if !ok {
            let e = std::io::Error::last_os_error();
            kill_group(&child);
            let _ = child.wait();
            return Err(spawn_err(e));
        }
    }
    Ok(Running {
        timeout,
        child,
        stdout,
        stderr,
        deadline: start + timeout,
        out: Vec::new(),
        err: Vec::new(),
    })
}

/// Waits for every command (together, each until its own deadline) and returns their
/// stdout or why they failed, in order. Bounded by the latest deadline plus `REAP_GRACE`;
/// when `stop` is set (the agent is stopping) every command still running is killed at once.
pub fn finish_all(mut procs: Vec<Running>, stop: &AtomicBool) -> Vec<Result<Vec<u8>, CustomError>> {
    let mut results: Vec<Option<Result<Vec<u8>, CustomError>>> =
        procs.iter().map(|_| None).collect();
    let mut open: Vec<usize> = (0..procs.len()).collect();
    while !open.is_empty() {
        let stopping = stop.load(Ordering::Relaxed);
        open.retain(|&i| {
            let done = if stopping {
                Some(procs[i].kill_with(CustomError::Stopped))
            } else {
                procs[i].step()
            };
            if let Some(r) = done {
                results[i] = Some(r);
            }
            results[i].is_none()
        });
        if !open.is_empty() {
            std::thread::sleep(POLL);
        }
    }
    // Every slot is filled when the loop ends (`step` is Some at the deadline at the latest).
    results.into_iter().flatten().collect()
}

impl Running {
    /// Drains the pipes and checks the process once; `Some` when it is finished.
    fn step(&mut self) -> Option<Result<Vec<u8>, CustomError>> {
        let over = drain(&mut self.stdout, &mut self.out, MAX_OUTPUT_BYTES + 1);
        let _ = drain(&mut self.stderr, &mut self.err, STDERR_KEPT);
        if let Err(e) = over {
            return Some(self.kill_with(CustomError::Wait(e)));
        }
        if self.out.len() > MAX_OUTPUT_BYTES {
            return Some(self.kill_with(CustomError::TooLarge));
        }
        match exited(&self.child) {
            Err(e) => return Some(self.kill_with(CustomError::Wait(e))),
            Ok(true) => {
                // The leader is a zombie until reaped, so -pgid is still ours: stragglers
                // it left behind are killed before the last drain.
                kill_group(&self.child);
                let _ = drain(&mut self.stdout, &mut self.out, MAX_OUTPUT_BYTES + 1);
                let _ = drain(&mut self.stderr, &mut self.err, STDERR_KEPT);
                let status = match self.child.wait() {
                    Ok(s) => s,
                    Err(e) => return Some(Err(CustomError::Wait(e))),
                };
                if self.out.len() > MAX_OUTPUT_BYTES {
                    return Some(Err(CustomError::TooLarge));
                }
                if !status.success() {
                    let status = match (status.code(), status.signal()) {
                        (Some(code), _) => format!("status {code}"),
                        (None, Some(sig)) => format!("signal {sig}"),
                        _ => status.to_string(),
                    };
                    return Some(Err(CustomError::Exit {
                        status,
                        stderr: first_line(&self.err),
                    }));
                }
                return Some(Ok(std::mem::take(&mut self.out)));
            }
            Ok(false) => {}
        }
        if Instant::now() >= self.deadline {
            return Some(self.kill_with(CustomError::Timeout(self.timeout)));
        }
        None
    }

    /// Kills the group and reaps the leader (bounded by `REAP_GRACE`), then returns `err`.
    fn kill_with(&mut self, err: CustomError) -> Result<Vec<u8>, CustomError> {
        kill_group(&self.child);
        let until = Instant::now() + REAP_GRACE;
        while Instant::now() < until {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) => std::thread::sleep(POLL),
            }
        }
        Err(err)
    }
}

/// SIGKILL to the command's whole process group (its pgid is its pid: `process_group(0)`).
/// Only called while the leader is not yet reaped, so the group id cannot have been reused.
fn kill_group(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Whether the process has exited, without reaping it (waitid WNOWAIT).
fn exited(child: &Child) -> std::io::Result<bool> {
    let pid = libc::id_t::from(child.id());
    // SAFETY: zeroed siginfo_t is a valid out-parameter for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes only into `info`; WNOWAIT leaves the child waitable.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: si_pid is set by waitid when a child changed state, 0 otherwise (WNOHANG).
    Ok(unsafe { info.si_pid() } != 0)
}

/// Reads what the non-blocking pipe holds now, keeping at most `keep` bytes in `buf`
/// (the rest is read and dropped so the writer never blocks on a full pipe).
fn drain(pipe: &mut impl Read, buf: &mut Vec<u8>, keep: usize) -> std::io::Result<()> {
    let mut chunk = [0u8; 8192];
    // Bounded: at most a pipe's capacity (or the cap) per step, then WouldBlock or EOF.
    for _ in 0..64 {
        match pipe.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                let room = keep.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}
