//! The `file` source: a file (sysfs and procfs included) read whole at every sample, at most
//! `MAX_OUTPUT_BYTES`. Parsing is left to `parse.rs`.

use std::io::Read;
use std::path::Path;

use super::{CustomError, MAX_OUTPUT_BYTES};

/// The file's text (invalid UTF-8 replaced); more than `MAX_OUTPUT_BYTES` is an error.
pub fn read(path: &Path) -> Result<String, CustomError> {
    let err = |source| CustomError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(err)?;
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
