//! A learned model as bytes (docs/ml.md §State): magic `ST`, a version, the fields in a fixed
//! order little-endian, a CRC-32; carried in the engine state as hex. Damage is an error.

use super::bucket::Bucket;
use super::calibrate::{BINS, Histogram};
use super::model::{Model, Slot, VALUES, WINDOW};

const MAGIC: &[u8; 2] = b"ST";
const VERSION: u8 = 1;
/// The encoded size of version 1.
pub const ENCODED_LEN: usize =
    3 + 193 * 10 + 2 * (BINS * 2 + 4) + WINDOW * 12 + VALUES * 4 + 18 + 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not hex")]
    NotHex,
    #[error("{0} bytes, want {ENCODED_LEN}")]
    Length(usize),
    #[error("not a learned model (magic {0:?})")]
    Magic([u8; 2]),
    #[error("model version {0}, this program reads version {VERSION}")]
    Version(u8),
    #[error("checksum mismatch (damaged)")]
    Checksum,
    #[error("field out of range: {0}")]
    Range(&'static str),
}

/// The model as hex (`Model::from_hex` reads it back).
pub fn to_hex(model: &Model) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * ENCODED_LEN);
    for b in to_bytes(model) {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// What `from_hex` reads: hex text, or a `StoredModel` (which may hold the model decoded).
pub trait ModelSource {
    fn model(&self) -> Result<Model, DecodeError>;
}

impl ModelSource for str {
    fn model(&self) -> Result<Model, DecodeError> {
        hex_to_model(self)
    }
}

impl ModelSource for String {
    fn model(&self) -> Result<Model, DecodeError> {
        hex_to_model(self)
    }
}

/// The model of hex text, or of a stored model.
pub fn from_hex<T: ModelSource + ?Sized>(source: &T) -> Result<Model, DecodeError> {
    source.model()
}

pub(super) fn hex_to_model(hex: &str) -> Result<Model, DecodeError> {
    let h = hex.as_bytes();
    if !h.len().is_multiple_of(2) {
        return Err(DecodeError::NotHex);
    }
    let nib = |c: u8| (c as char).to_digit(16).ok_or(DecodeError::NotHex);
    let bytes = h
        .chunks(2)
        .map(|p| Ok((nib(p[0])? << 4 | nib(p[1])?) as u8))
        .collect::<Result<Vec<u8>, _>>()?;
    from_bytes(&bytes)
}

pub fn to_bytes(m: &Model) -> Vec<u8> {
    let mut o = Vec::with_capacity(ENCODED_LEN);
    o.extend_from_slice(MAGIC);
    o.push(VERSION);
    for b in m.week.iter().chain(&m.day).chain([&m.all]) {
        o.extend_from_slice(&b.n.to_le_bytes());
        o.extend_from_slice(&b.m.to_le_bytes());
        o.extend_from_slice(&b.s.to_le_bytes());
    }
    for h in [&m.point, &m.window] {
        h.bins
            .iter()
            .for_each(|c| o.extend_from_slice(&c.to_le_bytes()));
        o.extend_from_slice(&h.total.to_le_bytes());
    }
    for s in &m.ring {
        for v in [s.y, s.usual, s.score] {
            o.extend_from_slice(&v.to_le_bytes());
        }
    }
    for (v, c) in &m.values {
        o.extend_from_slice(&v.to_le_bytes());
        o.extend_from_slice(&c.to_le_bytes());
    }
    o.extend_from_slice(&m.last_ms.to_le_bytes());
    o.extend_from_slice(&m.seen.to_le_bytes());
    o.extend_from_slice(&m.interval_s.to_le_bytes());
    o.push(m.ring_len);
    o.push(m.damped);
    let crc = crc32(&o);
    o.extend_from_slice(&crc.to_le_bytes());
    o
}

pub fn from_bytes(b: &[u8]) -> Result<Model, DecodeError> {
    if b.len() != ENCODED_LEN {
        return Err(DecodeError::Length(b.len()));
    }
    if &b[..2] != MAGIC {
        return Err(DecodeError::Magic([b[0], b[1]]));
    }
    if b[2] != VERSION {
        return Err(DecodeError::Version(b[2]));
    }
    let (body, sum) = b.split_at(ENCODED_LEN - 4);
    if crc32(body).to_le_bytes() != sum {
        return Err(DecodeError::Checksum);
    }
    let mut r = Reader { b: body, at: 3 };
    let mut m = Model::default();
    for b in m.week.iter_mut().chain(&mut m.day).chain([&mut m.all]) {
        *b = Bucket {
            n: r.u16(),
            m: r.u32() as i32,
            s: r.u32() as i32,
        };
    }
    for h in [&mut m.point, &mut m.window] {
        let mut bins = [0u16; BINS];
        bins.iter_mut().for_each(|c| *c = r.u16());
        let total = r.u32();
        if total != bins.iter().map(|&c| u32::from(c)).sum::<u32>() {
            return Err(DecodeError::Range("histogram total"));
        }
        *h = Histogram { bins, total };
    }
    for s in &mut m.ring {
        let v = [r.u32(), r.u32(), r.u32()].map(|v| v as i32);
        *s = Slot {
            y: v[0],
            usual: v[1],
            score: v[2],
        };
    }
    for e in &mut m.values {
        *e = (r.u16(), r.u16());
    }
    m.last_ms = u64::from(r.u32()) | u64::from(r.u32()) << 32;
    m.seen = r.u32();
    m.interval_s = r.u32();
    m.ring_len = r.u8();
    m.damped = r.u8();
    if m.interval_s == 0 || usize::from(m.ring_len) > WINDOW || m.damped >= 10 {
        return Err(DecodeError::Range("interval, window length or damping"));
    }
    Ok(m)
}

/// Reads little-endian fields from a slice whose length was checked.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(s) = self.b.get(self.at..self.at + N) {
            out.copy_from_slice(s);
        }
        self.at += N;
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
}

/// CRC-32 (IEEE 802.3, as zlib), bit by bit: a few KiB once an hour.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::model::Unit;

    #[test]
    fn round_trips_and_damage_is_an_error() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let mut m = Model::default();
        for i in 0..500u64 {
            m.observe(
                1_767_225_600_000 + i * 300_000,
                1000 + i % 7 * 100,
                Unit::Ports,
            );
        }
        let hex = to_hex(&m);
        assert_eq!(hex.len(), 2 * ENCODED_LEN);
        assert_eq!(from_hex(&hex), Ok(m.clone()));
        let mut bytes = to_bytes(&m);
        bytes[100] ^= 1;
        assert_eq!(from_bytes(&bytes), Err(DecodeError::Checksum));
        assert_eq!(
            from_bytes(&bytes[1..]),
            Err(DecodeError::Length(ENCODED_LEN - 1))
        );
        assert_eq!(from_hex("zz"), Err(DecodeError::NotHex));
    }
}
