//! Owns the /proc/net/dev reader: 64-bit byte and packet counters per interface.
//! Does not compute deltas or handle counter resets (that is the report's baseline).

use std::collections::BTreeMap;
use std::path::Path;

use super::{CollectError, Counters};

/// Reads root/proc/net/dev. `include` non-empty keeps only those interfaces; `exclude` is
/// applied after. Counters are parsed as u64 (protocol doc §1.4: values exceed 2^32).
/// A malformed line is skipped with a warning naming the file and line.
pub fn read(
    root: &Path,
    include: &[String],
    exclude: &[String],
) -> Result<BTreeMap<String, Counters>, CollectError> {
    let path = root.join("proc/net/dev");
    let bytes = std::fs::read(&path).map_err(|e| CollectError::read(&path, e))?;
    let text = super::lossless_text(&bytes);
    let mut out = BTreeMap::new();
    // Two header lines: "Inter-|   Receive ..." and " face |bytes ...".
    for (index, line) in text.lines().enumerate().skip(2) {
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, counters)) = parse_line(line) else {
            tracing::warn!(file = %path.display(), line = index + 1, "skipping malformed interface line");
            continue;
        };
        if !include.is_empty() && !include.contains(&name) {
            continue;
        }
        if exclude.contains(&name) {
            continue;
        }
        out.insert(name, counters);
    }
    Ok(out)
}

/// `  eth0: rx_bytes rx_packets errs drop fifo frame compressed multicast tx_bytes tx_packets ...`
fn parse_line(line: &str) -> Option<(String, Counters)> {
    let (name, rest) = line.split_once(':')?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let fields = rest
        .split_whitespace()
        .map(str::parse::<u64>)
        .collect::<Result<Vec<u64>, _>>()
        .ok()?;
    if fields.len() < 16 {
        return None;
    }
    Some((
        name.to_string(),
        Counters {
            bytes_in: fields[0],
            packets_in: fields[1],
            bytes_out: fields[8],
            packets_out: fields[9],
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wide_and_squashed_lines() {
        let (name, c) = parse_line(
            "  eth0:29358693495 20000000    0    0    0     0          0         0 5000000000 4294967296    0    0    0     0       0          0",
        )
        .unwrap();
        assert_eq!(name, "eth0");
        assert_eq!(c.bytes_in, 29_358_693_495);
        assert_eq!(c.packets_out, 4_294_967_296);
        assert!(parse_line("eth0: 1 2 3").is_none());
        assert!(parse_line("eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16").is_none());
        assert!(parse_line("eth0: x 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16").is_none());
    }
}
