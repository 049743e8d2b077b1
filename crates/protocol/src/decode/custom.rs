//! `custom_metrics` (protocol doc §1.5) as shapes of the typed walk: names and value keys are
//! never abbreviated, each metric is an array of exactly one object with one value key (a
//! `null` metric is absent).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::ctx::{Ctx, Grow, Min, Seg, Stop};
use super::leaf::Leaf;
use super::walk::{Any, Got, Opt, Scalar, Shape};
use super::{DecodeError, invalid};
use crate::keys::{IP_LIST, NUMBER, NUMBER_LIST, STRING_LIST, is_custom_metric_name};
use crate::model::CustomValue;

const ONE_OBJECT: &str = "must be an array of exactly one object";
const ONE_KEY: &str = "must hold exactly one of number, number_list, string_list, ip_list";

/// `custom_metrics`: `{name: [{value_key: value}]}`.
pub(super) struct Custom<'c>(pub(super) &'c Ctx);

impl<'de> Shape<'de> for Custom<'_> {
    type Out = BTreeMap<String, CustomValue>;

    fn ctx(&self) -> &Ctx {
        self.0
    }

    fn want(&self) -> &'static str {
        "an object"
    }

    fn map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Out, A::Error> {
        let c = self.0;
        let mut out = BTreeMap::new();
        while let Some(name) = a.next_key::<String>()? {
            let valid = is_custom_metric_name(&name);
            let dup = out.contains_key(&name);
            c.push(Seg::Name(name));
            if !valid {
                let m = "a custom metric name is 1-128 characters of [a-zA-Z0-9:_-], not starting with \"aws:\"";
                return Err(c.fail(invalid(&c.path(), m)));
            }
            if dup {
                return Err(c.fail(invalid(&c.path(), "key appears twice")));
            }
            // A metric is optional in every report: `null` reads as not reported.
            let v = a.next_value_seed(Any(Opt(Metric(c))))?;
            if let (Some(v), Some(Seg::Name(name))) = (v, c.pop_seg()) {
                out.insert(name, v);
            }
        }
        Ok(out)
    }
}

/// Refuses with a fixed message at the current path.
fn fixed(c: &Ctx, message: &str) -> Stop {
    c.stop(invalid(&c.path(), message))
}

/// One metric: an array of exactly one object.
struct Metric<'c>(&'c Ctx);

impl<'de> Shape<'de> for Metric<'_> {
    type Out = CustomValue;

    fn ctx(&self) -> &Ctx {
        self.0
    }

    fn want(&self) -> &'static str {
        "an array"
    }

    fn refuse(&self, _: Got) -> Stop {
        fixed(self.0, ONE_OBJECT)
    }

    fn seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<CustomValue, A::Error> {
        let c = self.0;
        c.push(Seg::Index(0));
        let one = a.next_element_seed(Any(Value(c)))?;
        c.pop();
        let Some(one) = one else {
            return Err(self.refuse(Got::Seq).raise());
        };
        match a.next_element_seed(Leaf(Metric(c)))? {
            None => Ok(one),
            // A second element: refused before anything in it is read.
            Some(_) => Err(self.refuse(Got::Seq).raise()),
        }
    }
}

/// The object holding one value key and its value.
struct Value<'c>(&'c Ctx);

impl<'de> Shape<'de> for Value<'_> {
    type Out = CustomValue;

    fn ctx(&self) -> &Ctx {
        self.0
    }

    fn want(&self) -> &'static str {
        "an object"
    }

    fn map<A: MapAccess<'de>>(self, mut a: A) -> Result<CustomValue, A::Error> {
        let c = self.0;
        let key = match a.next_key_seed(ValueKey)? {
            None => return Err(fixed(c, ONE_KEY).raise()),
            Some(Err(key)) => {
                let path = c.path();
                return Err(c.fail(DecodeError::UnknownKey { path, key }));
            }
            Some(Ok(key)) => key,
        };
        c.push(Seg::Key(key));
        let v = match key {
            NUMBER => CustomValue::Number(a.next_value_seed(Leaf(One(c, Number)))?),
            NUMBER_LIST => CustomValue::NumberList(a.next_value_seed(Any(List(c, Number)))?),
            STRING_LIST => CustomValue::StringList(a.next_value_seed(Any(List(c, Text)))?),
            _ => CustomValue::IpList(a.next_value_seed(Any(List(c, Ip)))?),
        };
        c.pop();
        match a.next_key_seed(ValueKey)? {
            None => Ok(v),
            Some(_) => Err(fixed(c, ONE_KEY).raise()),
        }
    }
}

/// A value key (`number`, …) or the unknown key's text.
struct ValueKey;

impl<'de> DeserializeSeed<'de> for ValueKey {
    type Value = Result<&'static str, String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for ValueKey {
    type Value = Result<&'static str, String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value key")
    }

    fn visit_str<E: de::Error>(self, k: &str) -> Result<Self::Value, E> {
        let known = [NUMBER, NUMBER_LIST, STRING_LIST, IP_LIST];
        Ok(known
            .into_iter()
            .find(|x| *x == k)
            .ok_or_else(|| k.to_string()))
    }
}

/// An item of a list value (or the `number` value), refused at the value key's path: items
/// have no names of their own.
trait Item: Copy {
    type Out;
    /// Fewest input bytes one item takes.
    const MIN: Min;
    /// The type wanted, as in "… is not a string".
    const WANT: &'static str;
    fn read(self, s: Scalar) -> Result<Self::Out, String>;
}

#[derive(Clone, Copy)]
struct Number;
#[derive(Clone, Copy)]
struct Text;
#[derive(Clone, Copy)]
struct Ip;

impl Item for Number {
    type Out = f64;
    /// `0` in CBOR, `0,` in JSON.
    const MIN: Min = Min { cbor: 1, json: 2 };
    const WANT: &'static str = "a number";
    fn read(self, s: Scalar) -> Result<f64, String> {
        s.number().ok_or_else(|| format!("{s} is not a number"))
    }
}

impl Item for Text {
    type Out = String;
    /// `""` in CBOR (one byte), `"",` in JSON.
    const MIN: Min = Min { cbor: 1, json: 3 };
    const WANT: &'static str = "a string";
    fn read(self, s: Scalar) -> Result<String, String> {
        match s {
            Scalar::Str(v) => Ok(v.to_string()),
            s => Err(format!("{s} is not a string")),
        }
    }
}

impl Item for Ip {
    type Out = IpAddr;
    /// `"::"`: three bytes in CBOR, five with quotes and comma in JSON.
    const MIN: Min = Min { cbor: 3, json: 5 };
    const WANT: &'static str = "a string";
    fn read(self, s: Scalar) -> Result<IpAddr, String> {
        match s {
            Scalar::Str(v) => v.parse().map_err(|_| format!("{v:?} is not an IP address")),
            s => Err(format!("{s} is not a string")),
        }
    }
}

/// One item read as a shape.
struct One<'c, I>(&'c Ctx, I);

impl<'de, I: Item> Shape<'de> for One<'_, I> {
    type Out = I::Out;

    fn ctx(&self) -> &Ctx {
        self.0
    }

    fn want(&self) -> &'static str {
        I::WANT
    }

    fn scalar(self, s: Scalar) -> Result<I::Out, Stop> {
        self.1.read(s).map_err(|m| fixed(self.0, &m))
    }
}

/// A list value: an array of items.
struct List<'c, I>(&'c Ctx, I);

impl<'de, I: Item> Shape<'de> for List<'_, I> {
    type Out = Vec<I::Out>;

    fn ctx(&self) -> &Ctx {
        self.0
    }

    fn want(&self) -> &'static str {
        "an array"
    }

    fn refuse(&self, _: Got) -> Stop {
        fixed(self.0, "must be an array")
    }

    fn seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Vec<I::Out>, A::Error> {
        let mut out = Grow::new(self.0, a.size_hint(), I::MIN);
        while let Some(x) = a.next_element_seed(Leaf(One(self.0, self.1)))? {
            out.push(x);
        }
        Ok(out.done())
    }
}
