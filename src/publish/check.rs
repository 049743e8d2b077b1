//! Owns the offline identity check behind `check-config`: files readable and parseable,
//! key matches certificate, certificate within its validity window, password file usable and
//! private. Does not connect.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::login::{read_password, world_readable};
use super::tls::{self, TlsError};
use super::validity::{format_utc, validity};

/// Warn when the client certificate expires within this many seconds (30 days).
pub const EXPIRY_WARNING_SECS: i64 = 30 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub file: PathBuf,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        // TLS errors already name their file; say it once.
        let file = self.file.display().to_string();
        if self.message.contains(&file) {
            write!(f, "{level}: {}", self.message)
        } else {
            write!(f, "{level}: {file}: {}", self.message)
        }
    }
}

fn error(file: &Path, message: impl Into<String>) -> Problem {
    Problem {
        severity: Severity::Error,
        file: file.to_path_buf(),
        message: message.into(),
    }
}

fn from_tls(file: &Path, e: &TlsError) -> Problem {
    // TlsError already names the file; keep the message whole.
    error(file, e.to_string())
}

/// Checks the CA file (server verification is mandatory, whatever the login).
pub fn check_ca(ca_file: &Path) -> Vec<Problem> {
    match tls::load_roots(ca_file) {
        Ok(_) => Vec::new(),
        Err(e) => vec![from_tls(ca_file, &e)],
    }
}

/// Checks a password file: readable, not empty, text; a warning when anyone may read it.
/// The password itself never appears in a finding.
pub fn check_password_file(path: &Path) -> Vec<Problem> {
    if let Err(e) = read_password(path) {
        return vec![error(path, e.to_string())];
    }
    match world_readable(path) {
        Ok(false) => Vec::new(),
        Ok(true) => vec![Problem {
            severity: Severity::Warning,
            file: path.to_path_buf(),
            message: format!(
                "password file {} is world-readable: chmod 0600 it, or pass it with systemd's LoadCredential=",
                path.display()
            ),
        }],
        Err(e) => vec![error(path, format!("cannot stat: {e}"))],
    }
}

/// Checks the client identity and CA files as they are now; empty means all good.
pub fn check_identity(
    cert_file: &Path,
    key_file: &Path,
    ca_file: &Path,
    now: SystemTime,
) -> Vec<Problem> {
    let mut problems = check_ca(ca_file);
    let certs = tls::load_certs("certificate file", cert_file)
        .map_err(|e| problems.push(from_tls(cert_file, &e)))
        .ok();
    let key = tls::load_key(key_file)
        .map_err(|e| problems.push(from_tls(key_file, &e)))
        .ok();
    let Some(certs) = certs else {
        return problems;
    };
    if let Some(leaf) = certs.first() {
        problems.extend(check_validity(cert_file, leaf, now));
    }
    if let Some(key) = key
        && let Err(e) = tls::certified_key(certs, key, cert_file, key_file, &tls::provider())
    {
        problems.push(from_tls(key_file, &e));
    }
    problems
}

fn check_validity(file: &Path, der: &[u8], now: SystemTime) -> Option<Problem> {
    let window = match validity(der) {
        Ok(w) => w,
        Err(e) => return Some(error(file, e.to_string())),
    };
    let now = match now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    if now < window.not_before {
        return Some(error(
            file,
            format!(
                "certificate is not valid before {}",
                format_utc(window.not_before)
            ),
        ));
    }
    if now > window.not_after {
        return Some(error(
            file,
            format!("certificate expired on {}", format_utc(window.not_after)),
        ));
    }
    let left = window.not_after - now;
    (left <= EXPIRY_WARNING_SECS).then(|| Problem {
        severity: Severity::Warning,
        file: file.to_path_buf(),
        message: format!(
            "certificate expires on {} (in {} days)",
            format_utc(window.not_after),
            left / 86_400
        ),
    })
}
