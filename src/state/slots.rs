//! One small record kept in a file of two preallocated slots (A/B), rewritten in place with a
//! sequence number and a checksum: no new disk blocks after the first write. Holds no policy.
//!
//! Layout: two slots of `SLOT_SIZE` bytes; each starts with `MAGIC`, the sequence number
//! (u64 LE), the payload length (u32 LE) and an FNV-1a 64 checksum (u64 LE) of those and the
//! payload, then the payload. A write goes to the slot that does not hold the newest valid
//! record, so a torn write (power cut, full disk mid-write) leaves the previous record intact.
//! The file is created once at full size, zero-filled (blocks allocated then); later writes
//! overwrite bytes in place, which a full disk still takes on ext4, tmpfs and vfat (not on
//! log-structured or copy-on-write file systems such as f2fs, ubifs or btrfs).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::StateError;
use crate::detect::hash::Fnv1a;

/// Room for a baseline of a few hundred interfaces.
pub const SLOT_SIZE: usize = 32 * 1024;
const MAGIC: &[u8; 8] = b"DAslot1\0";
const HEADER: usize = 8 + 8 + 4 + 8;

/// The newest valid record of the file at `path`: (sequence, payload). `None` when the file
/// does not exist or neither slot holds a valid record.
pub fn read(path: &Path) -> Result<Option<(u64, Vec<u8>)>, StateError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(f) => (&f)
            .take(2 * SLOT_SIZE as u64)
            .read_to_end(&mut bytes)
            .map_err(|source| StateError::Read {
                path: path.to_path_buf(),
                source,
            })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    Ok(newest(&bytes).map(|(_, seq, payload)| (seq, payload.to_vec())))
}

/// Writes `payload` into the slot not holding the newest valid record, in place.
pub fn write(path: &Path, payload: &[u8]) -> Result<(), StateError> {
    let werr = |source| StateError::Write {
        path: path.to_path_buf(),
        source,
    };
    if payload.len() > SLOT_SIZE - HEADER {
        return Err(StateError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "record of {} bytes does not fit a {SLOT_SIZE}-byte slot",
                payload.len()
            ),
        });
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(werr)?;
    let mut bytes = Vec::new();
    (&file)
        .take(2 * SLOT_SIZE as u64)
        .read_to_end(&mut bytes)
        .map_err(werr)?;
    if bytes.len() < 2 * SLOT_SIZE {
        // First write (or a file cut short): allocate both slots now, keeping what is there.
        file.write_all_at(&vec![0u8; 2 * SLOT_SIZE - bytes.len()], bytes.len() as u64)
            .map_err(werr)?;
        file.sync_all().map_err(werr)?;
    }
    let (slot, seq) = match newest(&bytes) {
        Some((slot, seq, _)) => (1 - slot, seq.wrapping_add(1)),
        None => (0, 1),
    };
    file.write_all_at(&record(seq, payload), (slot * SLOT_SIZE) as u64)
        .map_err(werr)?;
    file.sync_data().map_err(werr)?;
    Ok(())
}

fn record(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(seq, payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The valid slot with the highest sequence number: (slot index, sequence, payload).
fn newest(bytes: &[u8]) -> Option<(usize, u64, &[u8])> {
    (0..2)
        .filter_map(|slot| {
            let start = slot * SLOT_SIZE;
            let s = bytes.get(start..(start + SLOT_SIZE).min(bytes.len()))?;
            parse(s).map(|(seq, payload)| (slot, seq, payload))
        })
        .max_by_key(|(_, seq, _)| *seq)
}

fn parse(slot: &[u8]) -> Option<(u64, &[u8])> {
    if slot.get(..8)? != MAGIC {
        return None;
    }
    let seq = u64::from_le_bytes(slot.get(8..16)?.try_into().ok()?);
    let len = u32::from_le_bytes(slot.get(16..20)?.try_into().ok()?) as usize;
    let sum = u64::from_le_bytes(slot.get(20..28)?.try_into().ok()?);
    let payload = slot.get(HEADER..HEADER.checked_add(len)?)?;
    (checksum(seq, payload) == sum).then_some((seq, payload))
}

/// FNV-1a 64 over the sequence number, the length and the payload.
fn checksum(seq: u64, payload: &[u8]) -> u64 {
    let mut h = Fnv1a::default();
    h.eat(&seq.to_le_bytes());
    h.eat(&(payload.len() as u32).to_le_bytes());
    h.eat(payload);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_alternate_slots_and_the_newest_valid_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.slots");
        assert_eq!(read(&path).unwrap(), None);
        write(&path, b"one").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            2 * SLOT_SIZE as u64
        );
        assert_eq!(read(&path).unwrap(), Some((1, b"one".to_vec())));
        write(&path, b"two").unwrap();
        assert_eq!(read(&path).unwrap(), Some((2, b"two".to_vec())));
        // A torn write of the third record (slot 0) leaves the second one in force.
        let mut bytes = std::fs::read(&path).unwrap();
        write(&path, b"three").unwrap();
        assert_eq!(read(&path).unwrap(), Some((3, b"three".to_vec())));
        let torn = record(3, b"three");
        bytes[..torn.len() - 2].copy_from_slice(&torn[..torn.len() - 2]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(&path).unwrap(), Some((2, b"two".to_vec())));
        // Garbage everywhere: no record, and the next write starts over.
        std::fs::write(&path, vec![0xa5u8; 2 * SLOT_SIZE]).unwrap();
        assert_eq!(read(&path).unwrap(), None);
        write(&path, b"again").unwrap();
        assert_eq!(read(&path).unwrap(), Some((1, b"again".to_vec())));
    }

    #[test]
    fn a_record_too_big_for_a_slot_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.slots");
        let err = write(&path, &vec![b'x'; SLOT_SIZE])
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.slots"), "{err}");
    }
}
