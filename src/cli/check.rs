//! `detect-agent check-config`: every problem in a config file, one line each — keys (all the
//! unknown ones), files, key/certificate match, certificate dates, password file, thing name,
//! interval and verdict wait, security profiles (with the warnings of behaviors not evaluated
//! on the device). Non-zero exit on any error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use detect_agent::config::{Config, Problem};
use detect_agent::publish::{Severity, check_ca, check_identity, check_password_file};

use super::credential;

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let (config, unknown) = match Config::load_keeping_unknown(path) {
        Ok(loaded) => loaded,
        Err(e) => {
            println!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut errors = unknown.len();
    let mut lines: Vec<String> = unknown
        .iter()
        .map(|key| format!("error: {}: unknown key {key}", path.display()))
        .collect();
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
            lines.push(
                "error: [mqtt]: missing (endpoint, ca_file, and cert_file + key_file and/or username + password_file)"
                    .into(),
            );
        }
        Some(m) => {
            // A /run/credentials/<unit>/ path is checked at its LoadCredential= source
            // while the unit is not running (the install sequence of docs/operations.md).
            let unit_dirs = credential::unit_dirs();
            let mut mapped = |key: &str, file: &Path| -> PathBuf {
                match credential::map(file, &unit_dirs) {
                    Ok(None) => file.to_path_buf(),
                    Ok(Some(c)) => {
                        lines.push(format!(
                            "note: {key}: {} exists only while {} runs; checking its LoadCredential= source {} ({})",
                            file.display(),
                            c.unit,
                            c.source.display(),
                            c.unit_file.display()
                        ));
                        c.source
                    }
                    Err(e) => {
                        errors += 1;
                        lines.push(format!("error: {key}: {e}"));
                        file.to_path_buf()
                    }
                }
            };
            let ca = mapped("ca_file", &m.ca_file);
            let cert = m
                .client_cert()
                .map(|(cert, key)| (mapped("cert_file", cert), mapped("key_file", key)));
            let password = m
                .password_file
                .as_deref()
                .map(|p| mapped("password_file", p));
            let mut found = match &cert {
                Some((cert, key)) => check_identity(cert, key, &ca, SystemTime::now()),
                None => check_ca(&ca),
            };
            if let Some(path) = &password {
                found.extend(check_password_file(path));
            }
            for p in found {
                if p.severity == Severity::Error {
                    errors += 1;
                }
                lines.push(p.to_string());
            }
        }
    }
    // The engine's loader: each problem names the file, the behavior and the field.
    match detect_agent::detect::profile::load_all(&config.detect.profiles) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                lines.push(format!("warning: {w}"));
            }
        }
        Err(e) => {
            for p in &e.problems {
                errors += 1;
                lines.push(format!("error: {p}"));
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
