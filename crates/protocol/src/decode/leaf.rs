//! Scalars read through one visitor type for every scalar field: compiled once per format
//! rather than once per field (the agent's size); the field's shape then checks the value.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::ctx::Stop;
use super::walk::{Got, Scalar, Shape};

/// Reads one scalar as shape `S` through a single visitor type, compiled once per format
/// rather than once per shape (the agent's size); a container is refused unread.
pub(super) struct Leaf<S>(pub(super) S);

impl<'de, S: Shape<'de>> DeserializeSeed<'de> for Leaf<S> {
    type Value = S::Out;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<S::Out, D::Error> {
        let refuse = |g: Got| self.0.refuse(g);
        let v = d.deserialize_any(LeafVisitor(&refuse))?;
        self.0.scalar(v.scalar()).map_err(Stop::raise)
    }
}

/// A scalar as read, its text borrowed from the input when it can be.
enum LeafValue<'de> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'de, str>),
}

impl LeafValue<'_> {
    fn scalar(&self) -> Scalar<'_> {
        match self {
            LeafValue::Null => Scalar::Null,
            LeafValue::Bool(b) => Scalar::Bool(*b),
            LeafValue::U64(n) => Scalar::U64(*n),
            LeafValue::I64(n) => Scalar::I64(*n),
            LeafValue::F64(x) => Scalar::F64(*x),
            LeafValue::Str(s) => Scalar::Str(s),
        }
    }
}

struct LeafVisitor<'r>(&'r dyn Fn(Got) -> Stop);

impl<'de> Visitor<'de> for LeafVisitor<'_> {
    type Value = LeafValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar")
    }

    fn visit_unit<E: de::Error>(self) -> Result<LeafValue<'de>, E> {
        Ok(LeafValue::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<LeafValue<'de>, E> {
        Ok(LeafValue::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<LeafValue<'de>, E> {
        Ok(LeafValue::Bool(b))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<LeafValue<'de>, E> {
        Ok(LeafValue::U64(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<LeafValue<'de>, E> {
        Ok(LeafValue::I64(n))
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<LeafValue<'de>, E> {
        Ok(LeafValue::F64(x))
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<LeafValue<'de>, E> {
        Ok(LeafValue::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<LeafValue<'de>, E> {
        Ok(LeafValue::Str(Cow::Owned(s.to_string())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<LeafValue<'de>, A::Error> {
        Err(self.0(Got::Seq).raise())
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<LeafValue<'de>, A::Error> {
        Err(self.0(Got::Map).raise())
    }
}
