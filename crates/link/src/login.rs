//! Owns the MQTT user name / password login: the password is read from its own file (so it can
//! come from systemd's `LoadCredential=`), never kept in the config and never shown. No TLS here.

use std::fmt;
use std::path::{Path, PathBuf};

/// `[mqtt] username` and `password_file`: both or neither (MQTT 3.1.1 §3.1.2.9 allows no
/// password without a user name; a user name alone is refused by `check-config` too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub username: String,
    pub password_file: PathBuf,
}

/// A password as read from its file. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The secret itself, for the CONNECT packet only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Why a password file cannot be used; names the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("password file {path}: cannot read: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("password file {path}: empty (after the trailing newline is stripped)")]
    Empty { path: PathBuf },
    #[error("password file {path}: not UTF-8 (an MQTT password here is text)")]
    NotUtf8 { path: PathBuf },
}

/// Reads the password: the whole file, less one trailing `\n` or `\r\n` (what `echo` and
/// editors add). Other whitespace is part of the password.
pub fn read_password(path: &Path) -> Result<Password, LoginError> {
    let bytes = std::fs::read(path).map_err(|source| LoginError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| LoginError::NotUtf8 {
        path: path.to_path_buf(),
    })?;
    let trimmed = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if trimmed.is_empty() {
        return Err(LoginError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Password(trimmed.to_string()))
}

/// True when anyone on the host may read the file (mode `o+r`).
pub fn world_readable(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o004 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn one_trailing_newline_is_stripped_and_nothing_else() {
        for (content, want) in [
            (&b"s3cret\n"[..], "s3cret"),
            (b"s3cret\r\n", "s3cret"),
            (b"s3cret", "s3cret"),
            (b" pass word \n\n", " pass word \n"),
        ] {
            let (_d, path) = file(content);
            assert_eq!(read_password(&path).unwrap().expose(), want);
        }
    }

    #[test]
    fn empty_unreadable_and_binary_files_name_the_file() {
        for content in [&b""[..], b"\n", b"\r\n"] {
            let (_d, path) = file(content);
            let err = read_password(&path).unwrap_err();
            assert!(matches!(err, LoginError::Empty { .. }), "{err}");
            assert!(err.to_string().contains(&path.display().to_string()));
        }
        let (_d, path) = file(b"\xff\xfe\n");
        assert!(matches!(
            read_password(&path),
            Err(LoginError::NotUtf8 { .. })
        ));
        let missing = path.with_file_name("absent");
        let err = read_password(&missing).unwrap_err().to_string();
        assert!(err.contains("absent"), "{err}");
    }

    #[test]
    fn the_password_is_never_shown() {
        let (_d, path) = file(b"hunter2\n");
        let p = read_password(&path).unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn mode_decides_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        let (_d, path) = file(b"x");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(!world_readable(&path).unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(world_readable(&path).unwrap());
    }
}
