//! Runs the agent binary as a command-line tool: arguments and stdin in, exit code and the
//! two output streams (as lines) out, killed after a time limit.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::agent::BIN;

/// A command that takes well under a second; the limit only bounds a hung child.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

pub struct Ran {
    pub code: i32,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

/// `detect-agent ARGS` with `stdin` written to it; both outputs read while it runs.
pub fn run_cli(args: &[&str], stdin: &[u8]) -> Ran {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = stdin.to_vec();
    let mut pipe_in = child.stdin.take().unwrap();
    // The child may exit without reading (a bad flag): a broken pipe is not an error here.
    let writer = std::thread::spawn(move || {
        let _ = pipe_in.write_all(&input);
    });
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                r.read_to_string(&mut s).unwrap();
            }
            s
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("detect-agent {args:?} did not finish within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    writer.join().unwrap();
    let lines = |s: String| s.lines().map(str::to_string).collect();
    Ran {
        code: status.code().unwrap_or(-1),
        stdout: lines(out.join().unwrap()),
        stderr: lines(err.join().unwrap()),
    }
}
