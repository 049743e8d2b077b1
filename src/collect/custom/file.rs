//! The `file` source: a file (sysfs and procfs included) read whole at every sample, at most
//! `MAX_OUTPUT_BYTES`. Parsing is left to `parse.rs`.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{CustomError, MAX_OUTPUT_BYTES};

/// The file's text (invalid UTF-8 replaced); more than `MAX_OUTPUT_BYTES` is an error. Only
/// regular files (procfs and sysfs files are): opened non-blocking and checked, so a FIFO or
/// a device at that path can never hang the sample.
pub fn read(path: &Path) -> Result<String, CustomError> {
    let err = |source| CustomError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(err)?;
    if !file.metadata().map_err(err)?.is_file() {
        return Err(err(std::io::Error::other("not a regular file")));
    }
    let mut bytes = Vec::new();
    // One byte over the cap tells "exactly the cap" from "more".
    file.take(MAX_OUTPUT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() > MAX_OUTPUT_BYTES {
        return Err(CustomError::TooLarge);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
