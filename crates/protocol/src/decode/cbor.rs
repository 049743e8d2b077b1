//! CBOR bytes straight to the JSON data model, so one decoder reads both encodings (protocol
//! doc §2.1): text keys only, integers, finite floats; tags and byte strings are refused.
//!
//! Bounded by the payload (issue #17 item 6): one pass, no intermediate CBOR tree, containers
//! nested at most `MAX_DEPTH` deep (a report needs 6), a declared length never larger than the
//! bytes left, and an error's key path assembled only when the error is returned.

use serde_json::{Map, Number, Value};

use super::{DecodeError, invalid};

/// Deepest container nesting accepted; a real report nests 6 deep (protocol doc §1).
pub const MAX_DEPTH: usize = 16;

/// Decodes the CBOR data item at the start of `bytes`; `nodes` counts the items visited (the work done,
/// which tests bound by the input size).
pub(super) fn from_cbor(bytes: &[u8], nodes: &mut usize) -> Result<Value, DecodeError> {
    let mut r = Cursor {
        b: bytes,
        at: 0,
        nodes: 0,
    };
    let v = r.item(0);
    *nodes = r.nodes;
    // Bytes after the item are ignored, as before (ciborium read one item).
    v.map_err(Fail::into_error)
}

/// A path segment, pushed while an error unwinds.
enum Seg {
    Key(String),
    Index(usize),
}

struct Fail {
    syntax: bool,
    message: String,
    /// Innermost first.
    segs: Vec<Seg>,
}

impl Fail {
    fn syntax(message: impl Into<String>) -> Fail {
        Fail {
            syntax: true,
            message: message.into(),
            segs: vec![],
        }
    }

    fn invalid(message: &str) -> Fail {
        Fail {
            syntax: false,
            message: message.to_string(),
            segs: vec![],
        }
    }

    fn at(mut self, s: Seg) -> Fail {
        self.segs.push(s);
        self
    }

    fn into_error(self) -> DecodeError {
        if self.syntax {
            return DecodeError::Cbor(self.message);
        }
        let mut path = String::from("report");
        for s in self.segs.iter().rev() {
            match s {
                Seg::Key(k) => {
                    path.push('.');
                    path.push_str(k);
                }
                Seg::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        invalid(&path, &self.message)
    }
}

struct Cursor<'b> {
    b: &'b [u8],
    at: usize,
    nodes: usize,
}

/// A data item's head: major type and argument (`None` for an indefinite length).
struct Head {
    major: u8,
    info: u8,
    arg: Option<u64>,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, Fail> {
        let b = *self
            .b
            .get(self.at)
            .ok_or_else(|| Fail::syntax("unexpected end of input"))?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&[u8], Fail> {
        let left = self.b.len() - self.at;
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= left)
            .ok_or_else(|| Fail::syntax("unexpected end of input"))?;
        let s = &self.b[self.at..self.at + n];
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

    fn item(&mut self, depth: usize) -> Result<Value, Fail> {
        self.nodes += 1;
        let h = self.head()?;
        match (h.major, h.arg) {
            (0, Some(n)) => Ok(Value::Number(n.into())),
            (1, Some(n)) => i64::try_from(n)
                .map(|n| Value::Number((-1 - n).into()))
                .map_err(|_| Fail::invalid("integer out of range")),
            (3, _) => self.text(h.arg).map(Value::String),
            (4 | 5, _) if depth >= MAX_DEPTH => Err(Fail::invalid(&format!(
                "nested deeper than {MAX_DEPTH} levels: no report is"
            ))),
            (4, n) => self.array(n, depth + 1),
            (5, n) => self.map(n, depth + 1),
            (2 | 6, _) => Err(Fail::invalid(
                "CBOR tags and byte strings are not part of a report",
            )),
            (7, _) => self.simple(h),
            _ => Err(Fail::syntax("invalid indefinite length")),
        }
    }

    fn text(&mut self, n: Option<u64>) -> Result<String, Fail> {
        let utf8 = |b: &[u8]| {
            std::str::from_utf8(b)
                .map(str::to_string)
                .map_err(|_| Fail::syntax("text is not UTF-8"))
        };
        let Some(n) = n else {
            let mut s = String::new();
            while !self.at_break()? {
                let h = self.head()?;
                match (h.major, h.arg) {
                    (3, Some(n)) => s.push_str(&utf8(self.take(n)?)?),
                    _ => return Err(Fail::syntax("a text chunk is not definite text")),
                }
            }
            return Ok(s);
        };
        utf8(self.take(n)?)
    }

    fn array(&mut self, n: Option<u64>, depth: usize) -> Result<Value, Fail> {
        let mut items = Vec::new();
        let n = n.map(|n| self.count(n, 1)).transpose()?;
        loop {
            let done = match n {
                Some(n) => items.len() as u64 == n,
                None => self.at_break()?,
            };
            if done {
                return Ok(Value::Array(items));
            }
            let i = items.len();
            items.push(self.item(depth).map_err(|f| f.at(Seg::Index(i)))?);
        }
    }

    fn map(&mut self, n: Option<u64>, depth: usize) -> Result<Value, Fail> {
        let mut m = Map::new();
        let n = n.map(|n| self.count(n, 2)).transpose()?;
        let mut seen = 0u64;
        loop {
            let done = match n {
                Some(n) => seen == n,
                None => self.at_break()?,
            };
            if done {
                return Ok(Value::Object(m));
            }
            seen += 1;
            self.nodes += 1;
            let h = self.head()?;
            if h.major != 3 {
                return Err(Fail::invalid("map key is not a text string"));
            }
            let k = self.text(h.arg)?;
            let v = match self.item(depth) {
                Ok(v) => v,
                Err(f) => return Err(f.at(Seg::Key(k))),
            };
            if m.contains_key(&k) {
                return Err(Fail::invalid("key appears twice").at(Seg::Key(k)));
            }
            m.insert(k, v);
        }
    }

    fn simple(&mut self, h: Head) -> Result<Value, Fail> {
        let bits = h.arg.unwrap_or(0);
        let f = match h.info {
            20 => return Ok(Value::Bool(false)),
            21 => return Ok(Value::Bool(true)),
            22 => return Ok(Value::Null),
            25 => half(bits as u16),
            26 => f64::from(f32::from_bits(bits as u32)),
            27 => f64::from_bits(bits),
            31 => return Err(Fail::syntax("unexpected break")),
            _ => return Err(Fail::invalid("unsupported CBOR item")),
        };
        Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| Fail::invalid("number is not finite"))
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
