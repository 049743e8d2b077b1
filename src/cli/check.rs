//! `detect-agent check-config`: every problem in a config file, one line each — keys, files,
//! key/certificate match, certificate dates, thing name, interval. Non-zero exit on any error.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use detect_agent::config::{Config, Problem};
use detect_agent::publish::{Severity, check_identity};

use super::credential;

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            println!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut errors = 0usize;
    let mut lines = Vec::new();
    for p in config.problems() {
        match p {
            Problem::Error(e) => {
                errors += 1;
                lines.push(format!("error: {e}"));
            }
            Problem::Warning(w) => lines.push(format!("warning: {w}")),
        }
    }
    if config.thing_name.is_none() {
        errors += 1;
        lines.push(
            "error: thing_name: missing (run needs it; it is also the MQTT client id)".into(),
        );
    }
    match &config.mqtt {
        None => {
            errors += 1;
            lines.push("error: [mqtt]: missing (endpoint, ca_file, cert_file, key_file)".into());
        }
        Some(m) => {
            let unit_dirs = credential::unit_dirs();
            let mut files = [
                ("cert_file", m.cert_file.clone()),
                ("key_file", m.key_file.clone()),
                ("ca_file", m.ca_file.clone()),
            ];
            for (key, file) in &mut files {
                match credential::map(file, &unit_dirs) {
                    Ok(None) => {}
                    Ok(Some(c)) => {
                        lines.push(format!(
                            "note: {key}: {} exists only while {} runs; checking its LoadCredential= source {} ({})",
                            file.display(),
                            c.unit,
                            c.source.display(),
                            c.unit_file.display()
                        ));
                        *file = c.source;
                    }
                    Err(e) => {
                        errors += 1;
                        lines.push(format!("error: {key}: {e}"));
                    }
                }
            }
            let [(_, cert), (_, key), (_, ca)] = &files;
            for p in check_identity(cert, key, ca, SystemTime::now()) {
                if p.severity == Severity::Error {
                    errors += 1;
                }
                lines.push(p.to_string());
            }
        }
    }
    if let Err(e) = state_dir_writable(&config.state.dir) {
        errors += 1;
        lines.push(format!(
            "error: state.dir: {}: {e}",
            config.state.dir.display()
        ));
    }
    for l in &lines {
        println!("{l}");
    }
    if errors > 0 {
        println!("{}: {errors} error(s)", path.display());
        Ok(ExitCode::FAILURE)
    } else {
        println!("{}: ok", path.display());
        Ok(ExitCode::SUCCESS)
    }
}

/// The state directory exists and is writable, or can be created.
fn state_dir_writable(dir: &Path) -> std::io::Result<()> {
    let mut probe = dir;
    // Walk up to the first existing ancestor: that is where a create would happen.
    while !probe.exists() {
        match probe.parent() {
            Some(p) => probe = p,
            None => break,
        }
    }
    let meta = std::fs::metadata(probe)?;
    if !meta.is_dir() {
        return Err(std::io::Error::other(format!(
            "{} is not a directory",
            probe.display()
        )));
    }
    let name = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(probe.as_os_str()))
        .map_err(std::io::Error::other)?;
    // SAFETY: access(2) reads a NUL-terminated path and has no other effect.
    if unsafe { libc::access(name.as_ptr(), libc::W_OK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
