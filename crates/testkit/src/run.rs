//! Runs the agent binary as a command-line tool: arguments and stdin in, exit code and the
//! two output streams out, killed after a time limit.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A command that takes well under a second; the limit only bounds a hung child.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

pub struct Ran {
    pub code: i32,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

/// `detect-agent ARGS` with `stdin` written to it; both outputs as lines.
pub fn run_cli(args: &[&str], stdin: &[u8]) -> Ran {
    let mut cmd = Command::new(super::bin::agent());
    cmd.args(args).env_remove("RUST_LOG");
    let out = output(cmd, Some(stdin.to_vec()));
    let lines = |b: Vec<u8>| {
        String::from_utf8(b)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: lines(out.stdout),
        stderr: lines(out.stderr),
    }
}

/// Runs `cmd` to completion (killed after `RUN_LIMIT`), both streams read while it runs;
/// `stdin`, when given, is written to it (else the command's own stdin setting stays).
pub fn output(mut cmd: Command, stdin: Option<Vec<u8>>) -> Output {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child may exit without reading (a bad flag): a broken pipe is not an error here.
    let writer = stdin.zip(child.stdin.take()).map(|(input, mut pipe)| {
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        })
    });
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                r.read_to_end(&mut buf).unwrap();
            }
            buf
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
            panic!("{cmd:?} did not finish within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(w) = writer {
        w.join().unwrap();
    }
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}
