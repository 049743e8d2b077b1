//! The walk's shared state: key spelling, the path being read, the report-level error that
//! stopped it, schema-checked key reading, and lists that grow only as far as the input allows.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};

use super::{DecodeError, invalid, spelling};
use crate::keys::{Key, TABLE};

/// A path segment: a structural key, a custom metric name, or a list index.
pub(super) enum Seg {
    Key(&'static str),
    Name(String),
    Index(usize),
}

/// State shared by the walk: the key spelling, the path to the value being read, and the
/// report-level error that stopped it (serde errors carry text only).
/// The walk stopped on a report-level error, recorded in its `Ctx` (not generic over the
/// format's error type, so each scalar check is compiled once, not once per format).
pub(super) struct Stop;

impl Stop {
    /// The serde error that unwinds the format's reader.
    pub(super) fn raise<E: de::Error>(self) -> E {
        E::custom("not a report")
    }
}

pub(super) struct Ctx {
    short: Cell<Option<bool>>,
    path: RefCell<Vec<Seg>>,
    err: RefCell<Option<DecodeError>>,
    /// Input bytes and whether they are JSON: no list grows past the items they could hold.
    len: usize,
    json: bool,
}

impl Ctx {
    pub(super) fn new(len: usize, json: bool) -> Ctx {
        Ctx {
            short: Cell::new(None),
            path: RefCell::new(Vec::new()),
            err: RefCell::new(None),
            len,
            json,
        }
    }

    pub(super) fn short(&self) -> bool {
        self.short.get() == Some(true)
    }

    pub(super) fn name(&self, k: Key) -> &'static str {
        k.name(self.short())
    }

    /// The current path, `report` at the root.
    pub(super) fn path(&self) -> String {
        let mut out = String::new();
        for s in self.path.borrow().iter() {
            match s {
                Seg::Key(k) => push_key(&mut out, k),
                Seg::Name(n) => push_key(&mut out, n),
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        if out.is_empty() { "report".into() } else { out }
    }

    /// The path of key `k` under the current one.
    pub(super) fn child(&self, k: Key) -> String {
        let mut p = if self.path.borrow().is_empty() {
            String::new()
        } else {
            self.path()
        };
        push_key(&mut p, self.name(k));
        p
    }

    pub(super) fn push(&self, s: Seg) {
        self.path.borrow_mut().push(s);
    }

    pub(super) fn pop(&self) {
        self.path.borrow_mut().pop();
    }

    pub(super) fn pop_seg(&self) -> Option<Seg> {
        self.path.borrow_mut().pop()
    }

    /// Records `e` as the reason the walk stops.
    pub(super) fn stop(&self, e: DecodeError) -> Stop {
        self.err.borrow_mut().get_or_insert(e);
        Stop
    }

    /// Records `e` as the reason the walk stops and returns the serde error that unwinds it.
    pub(super) fn fail<E: de::Error>(&self, e: DecodeError) -> E {
        self.stop(e).raise()
    }

    pub(super) fn take_err(&self) -> Option<DecodeError> {
        self.err.borrow_mut().take()
    }

    /// Reads the next key of an object whose keys are `allowed`: unknown, mixed-spelling and
    /// repeated keys are refused; the key's name is pushed on the path until `pop`.
    pub(super) fn key<'de, A: MapAccess<'de>>(
        &self,
        a: &mut A,
        allowed: &[Key],
        seen: &mut u32,
    ) -> Result<Option<Key>, A::Error> {
        let (key, short) = match a.next_key_seed(KeySeed(allowed))? {
            None => return Ok(None),
            Some(Ok(k)) => k,
            Some(Err(key)) => {
                let path = self.path();
                return Err(self.fail(DecodeError::UnknownKey { path, key }));
            }
        };
        match self.short.get() {
            None => self.short.set(Some(short)),
            Some(s) if s != short => {
                return Err(self.fail(DecodeError::MixedKeys {
                    path: self.path(),
                    key: key.name(short).to_string(),
                    found: spelling(short),
                    used: spelling(s),
                }));
            }
            Some(_) => {}
        }
        self.push(Seg::Key(key.name(short)));
        let bit = 1 << key as u32;
        if *seen & bit != 0 {
            return Err(self.fail(invalid(&self.path(), "key appears twice")));
        }
        *seen |= bit;
        Ok(Some(key))
    }
}

/// Fewest bytes one list item takes in CBOR and in JSON (with its comma).
#[derive(Clone, Copy)]
pub(super) struct Min {
    pub(super) cbor: usize,
    pub(super) json: usize,
}

/// A list being filled: room reserved for the items the format announced (CBOR says how
/// many), else grown geometrically but never past the items the input could hold, and no
/// slack kept after: a list costs at most twice its items while it grows (issue #17 item 6).
pub(super) struct Grow<T> {
    v: Vec<T>,
    max: usize,
}

impl<T> Grow<T> {
    pub(super) fn new(c: &Ctx, hint: Option<usize>, min: Min) -> Grow<T> {
        let max = c.len / if c.json { min.json } else { min.cbor } + 1;
        Grow {
            v: Vec::with_capacity(hint.unwrap_or(0).min(max)),
            max,
        }
    }

    pub(super) fn push(&mut self, x: T) {
        if self.v.len() == self.v.capacity() {
            let want = (self.v.len() * 2).clamp(4, self.max.max(4));
            self.v
                .reserve_exact(want.max(self.v.len() + 1) - self.v.len());
        }
        self.v.push(x);
    }

    pub(super) fn len(&self) -> usize {
        self.v.len()
    }

    pub(super) fn done(mut self) -> Vec<T> {
        self.v.shrink_to_fit();
        self.v
    }
}

fn push_key(out: &mut String, k: &str) {
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(k);
}

/// A structural key and whether it is the short spelling; an unknown key's text.
struct KeySeed<'k>(&'k [Key]);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Result<(Key, bool), String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Result<(Key, bool), String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a text key")
    }

    fn visit_str<E: de::Error>(self, k: &str) -> Result<Self::Value, E> {
        let row = TABLE
            .iter()
            .find(|(key, long, short)| self.0.contains(key) && (*long == k || *short == k));
        Ok(match row {
            Some((key, long, _)) => Ok((*key, *long != k)),
            None => Err(k.to_string()),
        })
    }
}
