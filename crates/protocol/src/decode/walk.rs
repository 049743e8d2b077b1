//! The one-pass typed walk under the decoder: a serde visitor that hands each value to the
//! `Shape` expected at its place in the report, the key path, and report-worded refusals.
//!
//! No generic tree is built (issue #17 item 6): a key is checked against the schema as it is
//! read, and a value of the wrong type is refused before its contents are read, so the work
//! and memory of a refused payload stop at the first thing that is not part of a report.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::ctx::{Ctx, Grow, Min, Seg, Stop};
use super::invalid;

/// A scalar as read, shown in refusals as JSON shows it.
#[derive(Clone, Copy)]
pub(super) enum Scalar<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(&'a str),
}

impl Scalar<'_> {
    /// A non-negative integer; an integral float is accepted (aws-c-iot writes report_id as
    /// a JSON double, protocol doc §1.3).
    pub(super) fn integer(self) -> Option<u64> {
        match self {
            Scalar::U64(n) => Some(n),
            Scalar::I64(n) => u64::try_from(n).ok(),
            Scalar::F64(f) => {
                (f >= 0.0 && f.fract() == 0.0 && f < 2f64.powi(64)).then_some(f as u64)
            }
            _ => None,
        }
    }

    pub(super) fn number(self) -> Option<f64> {
        match self {
            Scalar::U64(n) => Some(n as f64),
            Scalar::I64(n) => Some(n as f64),
            Scalar::F64(f) => Some(f),
            _ => None,
        }
    }
}

impl fmt::Display for Scalar<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Scalar::Null => f.write_str("null"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::U64(n) => write!(f, "{n}"),
            Scalar::I64(n) => write!(f, "{n}"),
            Scalar::F64(x) => match serde_json::Number::from_f64(x) {
                Some(n) => write!(f, "{n}"),
                None => write!(f, "{x}"),
            },
            Scalar::Str(s) => write!(f, "{}", serde_json::Value::from(s)),
        }
    }
}

/// What was found where a value of another type was expected.
pub(super) enum Got<'a> {
    Scalar(Scalar<'a>),
    Map,
    Seq,
}

impl Got<'_> {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Got::Scalar(Scalar::Null) => "null",
            Got::Scalar(Scalar::Bool(_)) => "a boolean",
            Got::Scalar(Scalar::Str(_)) => "a string",
            Got::Scalar(_) => "a number",
            Got::Map => "an object",
            Got::Seq => "an array",
        }
    }

    /// A scalar as JSON shows it, a container by its kind (its contents are never read).
    pub(super) fn shown(&self) -> String {
        match self {
            Got::Scalar(s) => s.to_string(),
            _ => self.kind().to_string(),
        }
    }
}

/// Declares a shape: the context it reads with and the type it wants.
macro_rules! shape {
    ($name:ident, $want:literal) => {
        pub(super) struct $name<'c>(pub(super) &'c Ctx);

        impl<'c> $name<'c> {
            const WANT: &'static str = $want;
        }
    };
}

/// Implements `Shape` for a shape declared above, with the methods given.
macro_rules! impl_shape {
    ($name:ident, $out:ty, { $($body:tt)* }) => {
        impl<'de> Shape<'de> for $name<'_> {
            type Out = $out;
            fn ctx(&self) -> &Ctx {
                self.0
            }
            fn want(&self) -> &'static str {
                Self::WANT
            }
            $($body)*
        }
    };
}

/// What one place of the report holds; each method not overridden refuses its kind of value.
pub(super) trait Shape<'de>: Sized {
    type Out;

    fn ctx(&self) -> &Ctx;

    /// The type wanted, as in "… is not a string".
    fn want(&self) -> &'static str;

    fn refuse(&self, got: Got) -> Stop {
        let c = self.ctx();
        let want = self.want();
        let got = if matches!(want, "an object" | "an array") {
            got.kind().to_string()
        } else {
            got.shown()
        };
        c.stop(invalid(&c.path(), &format!("{got} is not {want}")))
    }

    fn scalar(self, s: Scalar) -> Result<Self::Out, Stop> {
        Err(self.refuse(Got::Scalar(s)))
    }

    fn map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Out, A::Error> {
        Err(self.refuse(Got::Map).raise())
    }

    fn seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Out, A::Error> {
        Err(self.refuse(Got::Seq).raise())
    }
}

/// Reads one value as shape `S`.
pub(super) struct Any<S>(pub(super) S);

impl<'de, S: Shape<'de>> DeserializeSeed<'de> for Any<S> {
    type Value = S::Out;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<S::Out, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: Shape<'de>> Visitor<'de> for Any<S> {
    type Value = S::Out;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0.want())
    }

    fn visit_unit<E: de::Error>(self) -> Result<S::Out, E> {
        self.0.scalar(Scalar::Null).map_err(Stop::raise)
    }

    fn visit_none<E: de::Error>(self) -> Result<S::Out, E> {
        self.0.scalar(Scalar::Null).map_err(Stop::raise)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<S::Out, E> {
        self.0.scalar(Scalar::Bool(b)).map_err(Stop::raise)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<S::Out, E> {
        self.0.scalar(Scalar::U64(n)).map_err(Stop::raise)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<S::Out, E> {
        self.0.scalar(Scalar::I64(n)).map_err(Stop::raise)
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<S::Out, E> {
        self.0.scalar(Scalar::F64(x)).map_err(Stop::raise)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<S::Out, E> {
        self.0.scalar(Scalar::Str(s)).map_err(Stop::raise)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<S::Out, A::Error> {
        self.0.seq(a)
    }

    fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<S::Out, A::Error> {
        self.0.map(a)
    }
}

/// An optional value: `null` reads as absent (protocol doc §1.2–§1.5).
pub(super) struct Opt<S>(pub(super) S);

impl<'de, S: Shape<'de>> Shape<'de> for Opt<S> {
    type Out = Option<S::Out>;

    fn ctx(&self) -> &Ctx {
        self.0.ctx()
    }

    fn want(&self) -> &'static str {
        self.0.want()
    }

    fn refuse(&self, got: Got) -> Stop {
        self.0.refuse(got)
    }

    fn scalar(self, s: Scalar) -> Result<Self::Out, Stop> {
        match s {
            Scalar::Null => Ok(None),
            s => self.0.scalar(s).map(Some),
        }
    }

    fn map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Out, A::Error> {
        self.0.map(a).map(Some)
    }

    fn seq<A: SeqAccess<'de>>(self, a: A) -> Result<Self::Out, A::Error> {
        self.0.seq(a).map(Some)
    }
}

/// Reads the items of a list as shape `item(ctx)`, each index on the path while it is read.
pub(super) fn items<'de, A, S, F>(
    c: &Ctx,
    mut a: A,
    min: Min,
    item: F,
) -> Result<Vec<S::Out>, A::Error>
where
    A: SeqAccess<'de>,
    S: Shape<'de>,
    F: Fn() -> S,
{
    let mut out = Grow::new(c, a.size_hint(), min);
    loop {
        c.push(Seg::Index(out.len()));
        let Some(x) = a.next_element_seed(Any(item()))? else {
            c.pop();
            return Ok(out.done());
        };
        c.pop();
        out.push(x);
    }
}
