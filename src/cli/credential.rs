//! `check-config` outside the service: a `/run/credentials/<unit>/NAME` path exists only while
//! the unit runs, so it is checked at the unit's `LoadCredential=NAME:SOURCE`. No other unit parsing.

use std::path::{Component, Path, PathBuf};

/// Where the credential directories of running units live (systemd.exec(5), "Credentials").
const CREDENTIALS: &str = "/run/credentials";
/// Unit search path of the system manager, highest priority first (systemd.unit(5)); replaced
/// by `$SYSTEMD_UNIT_PATH` (colon-separated) like systemd-analyze does.
const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// A credential path mapped to the file systemd copies it from.
#[derive(Debug, PartialEq, Eq)]
pub struct Mapped {
    pub unit: String,
    pub source: PathBuf,
    pub unit_file: PathBuf,
}

/// The unit search path: `$SYSTEMD_UNIT_PATH` when set, else `UNIT_DIRS`.
pub fn unit_dirs() -> Vec<PathBuf> {
    match std::env::var_os("SYSTEMD_UNIT_PATH") {
        Some(p) if !p.is_empty() => std::env::split_paths(&p).collect(),
        _ => UNIT_DIRS.iter().map(PathBuf::from).collect(),
    }
}

/// `Ok(None)` when `path` is no credential path, or its unit's credential directory exists
/// (the unit runs: check the path itself). Otherwise the unit's `LoadCredential=` source for
/// it, or why there is none.
pub fn map(path: &Path, unit_dirs: &[PathBuf]) -> Result<Option<Mapped>, String> {
    let Ok(rest) = path.strip_prefix(CREDENTIALS) else {
        return Ok(None);
    };
    let parts: Vec<&str> = rest
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    let [unit, name] = parts[..] else {
        return Ok(None);
    };
    if Path::new(CREDENTIALS).join(unit).is_dir() {
        return Ok(None);
    }
    let Some(unit_file) = unit_dirs.iter().map(|d| d.join(unit)).find(|f| f.is_file()) else {
        return Err(format!(
            "{} exists only while {unit} runs, and no unit file {unit} was found to read its LoadCredential= from",
            path.display()
        ));
    };
    let mut files = vec![unit_file.clone()];
    // Drop-ins, in the order systemd applies them (by file name).
    let mut dropins: Vec<PathBuf> = unit_dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d.join(format!("{unit}.d"))).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    dropins.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files.extend(dropins);
    let mut source = None;
    for file in &files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        for line in text.lines() {
            let Some(value) = line.trim().strip_prefix("LoadCredential=") else {
                continue;
            };
            let value = value.trim();
            if value.is_empty() {
                source = None; // an empty assignment resets the list
            } else if let Some((id, src)) = value.split_once(':')
                && id == name
            {
                source = Some(PathBuf::from(src.trim()));
            }
        }
    }
    match source {
        Some(src) if src.is_absolute() => Ok(Some(Mapped {
            unit: unit.to_string(),
            source: src,
            unit_file,
        })),
        Some(src) => Err(format!(
            "{}: LoadCredential={name}:{} in {} is not an absolute path; check-config cannot follow it",
            path.display(),
            src.display(),
            unit_file.display()
        )),
        None => Err(format!(
            "{} exists only while {unit} runs, and {} has no LoadCredential={name}:SOURCE",
            path.display(),
            unit_file.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "/run/credentials/detect-agent-test-unit.service/device.key";

    fn dirs(root: &Path) -> Vec<PathBuf> {
        vec![root.join("etc"), root.join("lib")]
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_credential_path_maps_to_the_units_load_credential_source() {
        let root = tempfile::tempdir().unwrap();
        write(
            &root.path().join("lib/detect-agent-test-unit.service"),
            "[Service]\nLoadCredential=other:/x\nLoadCredential=device.key:/etc/detect-agent/device.key\n",
        );
        let got = map(Path::new(KEY), &dirs(root.path())).unwrap().unwrap();
        assert_eq!(got.source, Path::new("/etc/detect-agent/device.key"));
        assert_eq!(
            got.unit_file,
            root.path().join("lib/detect-agent-test-unit.service")
        );
        // A drop-in wins over the unit file.
        write(
            &root
                .path()
                .join("etc/detect-agent-test-unit.service.d/key.conf"),
            "[Service]\nLoadCredential=device.key:/srv/key.pem\n",
        );
        let got = map(Path::new(KEY), &dirs(root.path())).unwrap().unwrap();
        assert_eq!(got.source, Path::new("/srv/key.pem"));
    }

    #[test]
    fn other_paths_pass_through_and_missing_sources_are_errors() {
        let root = tempfile::tempdir().unwrap();
        let d = dirs(root.path());
        assert_eq!(map(Path::new("/etc/detect-agent/device.key"), &d), Ok(None));
        assert_eq!(map(Path::new("/run/credentials/x"), &d), Ok(None));
        let e = map(Path::new(KEY), &d).unwrap_err();
        assert!(e.contains("no unit file"), "{e}");
        write(
            &root.path().join("etc/detect-agent-test-unit.service"),
            "[Service]\nLoadCredential=device.key:relative.key\n",
        );
        let e = map(Path::new(KEY), &d).unwrap_err();
        assert!(e.contains("not an absolute path"), "{e}");
        write(
            &root.path().join("etc/detect-agent-test-unit.service"),
            "[Service]\nLoadCredential=other:/x\n",
        );
        let e = map(Path::new(KEY), &d).unwrap_err();
        assert!(e.contains("has no LoadCredential=device.key"), "{e}");
    }
}
