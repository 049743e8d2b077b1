//! CBOR bytes read as a serde `Deserializer`, so the typed walk that reads JSON reads CBOR too
//! (protocol doc §2.1): text keys only, integers, finite floats; tags and byte strings are refused.
//!
//! Bounded by the payload (issue #17 item 6): one pass, nothing kept but what the visitor
//! keeps, containers nested at most `MAX_DEPTH` deep (a report needs 6), a declared length
//! never larger than the bytes left, text borrowed from the input unless it comes in chunks.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::ctx::Ctx;
use super::{DecodeError, invalid};

/// Deepest container nesting accepted; a real report nests 6 deep (protocol doc §1).
pub const MAX_DEPTH: usize = 16;

/// Why reading stopped: the bytes are not CBOR (`syntax`), or an item no report holds.
#[derive(Debug)]
pub(super) struct Fail {
    syntax: bool,
    message: String,
}

impl Fail {
    fn syntax(message: impl Into<String>) -> Fail {
        Fail {
            syntax: true,
            message: message.into(),
        }
    }

    fn invalid(message: &str) -> Fail {
        Fail {
            syntax: false,
            message: message.to_string(),
        }
    }

    /// The error in report terms, at the path the walk had reached.
    pub(super) fn into_error(self, c: &Ctx) -> DecodeError {
        if self.syntax {
            DecodeError::Cbor(self.message)
        } else {
            invalid(&c.path(), &self.message)
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}

impl de::Error for Fail {
    fn custom<T: fmt::Display>(msg: T) -> Fail {
        Fail::invalid(&msg.to_string())
    }
}

/// Reads one CBOR data item; bytes after it are ignored, as before (ciborium read one item).
pub(super) struct Reader<'b> {
    b: &'b [u8],
    at: usize,
    depth: usize,
    /// Items visited: the work done, which tests bound by the input size.
    pub(super) nodes: usize,
}

#[path = "cbor_skip.rs"]
mod skip;

/// A data item's head: major type and argument (`None` for an indefinite length).
struct Head {
    major: u8,
    info: u8,
    arg: Option<u64>,
}

impl<'b> Reader<'b> {
    pub(super) fn new(b: &'b [u8]) -> Reader<'b> {
        Reader {
            b,
            at: 0,
            depth: 0,
            nodes: 0,
        }
    }

    fn byte(&mut self) -> Result<u8, Fail> {
        let b = *self
            .b
            .get(self.at)
            .ok_or_else(|| Fail::syntax("unexpected end of input"))?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&'b [u8], Fail> {
        let left = self.b.len() - self.at;
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= left)
            .ok_or_else(|| Fail::syntax("unexpected end of input"))?;
        let b: &'b [u8] = self.b;
        let s = &b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn head(&mut self) -> Result<Head, Fail> {
        let b = self.byte()?;
        let (major, info) = (b >> 5, b & 0x1f);
        let arg = match info {
            0..=23 => Some(u64::from(info)),
            24..=27 => {
                let bytes = self.take(1 << (info - 24))?;
                Some(bytes.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)))
            }
            31 => None,
            _ => return Err(Fail::syntax(format!("invalid CBOR head byte {b:#04x}"))),
        };
        Ok(Head { major, info, arg })
    }

    /// A declared element count, refused when the bytes left could not hold it.
    fn count(&self, n: u64, per: u64) -> Result<u64, Fail> {
        let left = (self.b.len() - self.at) as u64;
        if n.saturating_mul(per) > left {
            return Err(Fail::syntax(format!("length {n} is longer than the input")));
        }
        Ok(n)
    }

    fn at_break(&mut self) -> Result<bool, Fail> {
        match self.b.get(self.at) {
            Some(0xff) => {
                self.at += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(Fail::syntax("unexpected end of input")),
        }
    }

    fn item<V: Visitor<'b>>(&mut self, v: V) -> Result<V::Value, Fail> {
        self.nodes += 1;
        let h = self.head()?;
        match (h.major, h.arg) {
            (0, Some(n)) => v.visit_u64(n),
            (1, Some(n)) => match i64::try_from(n) {
                Ok(n) => v.visit_i64(-1 - n),
                Err(_) => Err(Fail::invalid("integer out of range")),
            },
            (3, Some(n)) => v.visit_borrowed_str(utf8(self.take(n)?)?),
            (3, None) => v.visit_string(self.chunks()?),
            (4 | 5, _) if self.depth >= MAX_DEPTH => Err(Fail::invalid(&format!(
                "nested deeper than {MAX_DEPTH} levels: no report is"
            ))),
            (4 | 5, n) => {
                let n = n
                    .map(|n| self.count(n, u64::from(h.major) - 3))
                    .transpose()?;
                self.depth += 1;
                let list = List { r: self, left: n };
                let out = if h.major == 4 {
                    v.visit_seq(list)
                } else {
                    v.visit_map(list)
                };
                self.depth -= 1;
                out
            }
            (2 | 6, _) => Err(Fail::invalid(
                "CBOR tags and byte strings are not part of a report",
            )),
            (7, _) => self.simple(h, v),
            _ => Err(Fail::syntax("invalid indefinite length")),
        }
    }

    /// Indefinite-length text: definite chunks joined.
    fn chunks(&mut self) -> Result<String, Fail> {
        let mut s = String::new();
        while !self.at_break()? {
            let h = self.head()?;
            match (h.major, h.arg) {
                (3, Some(n)) => s.push_str(utf8(self.take(n)?)?),
                _ => return Err(Fail::syntax("a text chunk is not definite text")),
            }
        }
        Ok(s)
    }

    fn simple<V: Visitor<'b>>(&mut self, h: Head, v: V) -> Result<V::Value, Fail> {
        let bits = h.arg.unwrap_or(0);
        let f = match h.info {
            20 => return v.visit_bool(false),
            21 => return v.visit_bool(true),
            22 => return v.visit_unit(),
            25 => half(bits as u16),
            26 => f64::from(f32::from_bits(bits as u32)),
            27 => f64::from_bits(bits),
            31 => return Err(Fail::syntax("unexpected break")),
            _ => return Err(Fail::invalid("unsupported CBOR item")),
        };
        if !f.is_finite() {
            return Err(Fail::invalid("number is not finite"));
        }
        v.visit_f64(f)
    }
}

fn utf8(b: &[u8]) -> Result<&str, Fail> {
    std::str::from_utf8(b).map_err(|_| Fail::syntax("text is not UTF-8"))
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = Fail;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Fail> {
        self.item(v)
    }

    /// `null` (and `undefined`) is `None`, anything else `Some` (serde's `Option` needs this).
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Fail> {
        match self.b.get(self.at) {
            Some(0xf6 | 0xf7) => {
                self.at += 1;
                v.visit_none()
            }
            _ => v.visit_some(self),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

/// The items of an array, or the key/value pairs of a map (`left` counts items or pairs;
/// `None` for an indefinite length, ended by a break).
struct List<'a, 'b> {
    r: &'a mut Reader<'b>,
    left: Option<u64>,
}

impl List<'_, '_> {
    fn more(&mut self) -> Result<bool, Fail> {
        match &mut self.left {
            Some(0) => Ok(false),
            Some(n) => {
                *n -= 1;
                Ok(true)
            }
            None => Ok(!self.r.at_break()?),
        }
    }
}

impl<'de> SeqAccess<'de> for List<'_, 'de> {
    type Error = Fail;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        s: T,
    ) -> Result<Option<T::Value>, Fail> {
        if !self.more()? {
            return Ok(None);
        }
        s.deserialize(&mut *self.r).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        let n = self.left.unwrap_or_else(|| self.r.items_left());
        usize::try_from(n).ok()
    }
}

impl<'de> MapAccess<'de> for List<'_, 'de> {
    type Error = Fail;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, s: K) -> Result<Option<K::Value>, Fail> {
        if !self.more()? {
            return Ok(None);
        }
        match self.r.b.get(self.r.at) {
            Some(b) if b >> 5 == 3 => s.deserialize(&mut *self.r).map(Some),
            Some(_) => Err(Fail::invalid("map key is not a text string")),
            None => Err(Fail::syntax("unexpected end of input")),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, s: V) -> Result<V::Value, Fail> {
        s.deserialize(&mut *self.r)
    }

    fn size_hint(&self) -> Option<usize> {
        self.left.and_then(|n| usize::try_from(n).ok())
    }
}

/// IEEE 754 half precision to f64.
fn half(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}
