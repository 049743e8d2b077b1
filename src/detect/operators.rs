//! The ten comparison operators and whether a datapoint violates a reference value
//! (detect-rules §4.2 numeric, §4.3 sets). Criteria describe NORMAL behaviour (§1): a
//! datapoint violates when the condition is false. Does not keep state (see `engine.rs`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::metrics::Datapoint;
use super::profile::Reference;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    LessThan,
    LessThanEquals,
    GreaterThan,
    GreaterThanEquals,
    InCidrSet,
    NotInCidrSet,
    InPortSet,
    NotInPortSet,
    InSet,
    NotInSet,
}

impl Operator {
    pub const ALL: [Operator; 10] = [
        Operator::LessThan,
        Operator::LessThanEquals,
        Operator::GreaterThan,
        Operator::GreaterThanEquals,
        Operator::InCidrSet,
        Operator::NotInCidrSet,
        Operator::InPortSet,
        Operator::NotInPortSet,
        Operator::InSet,
        Operator::NotInSet,
    ];

    pub const NUMERIC: [Operator; 4] = [
        Operator::LessThan,
        Operator::LessThanEquals,
        Operator::GreaterThan,
        Operator::GreaterThanEquals,
    ];

    /// The `comparisonOperator` spelling (§2.3).
    pub fn name(self) -> &'static str {
        match self {
            Operator::LessThan => "less-than",
            Operator::LessThanEquals => "less-than-equals",
            Operator::GreaterThan => "greater-than",
            Operator::GreaterThanEquals => "greater-than-equals",
            Operator::InCidrSet => "in-cidr-set",
            Operator::NotInCidrSet => "not-in-cidr-set",
            Operator::InPortSet => "in-port-set",
            Operator::NotInPortSet => "not-in-port-set",
            Operator::InSet => "in-set",
            Operator::NotInSet => "not-in-set",
        }
    }

    pub fn from_name(name: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|o| o.name() == name)
    }

    pub fn is_numeric(self) -> bool {
        Operator::NUMERIC.contains(&self)
    }

    /// `in-*` operators: every element must be inside; `not-in-*`: none may be.
    fn wants_inside(self) -> bool {
        matches!(
            self,
            Operator::InCidrSet | Operator::InPortSet | Operator::InSet
        )
    }

    /// Normal-when for numbers (§4.2); integers exact, doubles as IEEE values (a NaN is never
    /// normal).
    fn holds<T: PartialOrd>(self, v: T, t: T) -> bool {
        match self {
            Operator::LessThan => v < t,
            Operator::LessThanEquals => v <= t,
            Operator::GreaterThan => v > t,
            Operator::GreaterThanEquals => v >= t,
            _ => false,
        }
    }
}

/// The outcome of one comparison: `offending` holds the elements that make a set datapoint
/// violate (at most `limit` of them), or the value for a numeric one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Judgement {
    pub violating: bool,
    pub offending: Vec<String>,
}

/// Does `dp` violate `op reference`? `limit` caps the offending elements collected (1 for the
/// engine, which only needs the verdict; more for `dump --profile`). A datapoint whose type
/// does not fit the reference is treated as normal (the loader rules that out).
pub fn judge(op: Operator, reference: &Reference, dp: &Datapoint, limit: usize) -> Judgement {
    let numeric = |normal: bool, shown: String| Judgement {
        violating: !normal,
        offending: if normal { vec![] } else { vec![shown] },
    };
    let inside = op.wants_inside();
    match (reference, dp) {
        (Reference::Count(t), Datapoint::Count(v)) => numeric(op.holds(*v, *t), v.to_string()),
        (Reference::Number(t), Datapoint::Number(v)) => numeric(op.holds(*v, *t), v.to_string()),
        (Reference::Ports(s), Datapoint::Ports(r)) => {
            set_rule(inside, r, |p| s.contains(p), limit, u16::to_string)
        }
        (Reference::Cidrs(s), Datapoint::Addresses(r)) => {
            set_rule(inside, r, |a| s.contains(*a), limit, IpAddr::to_string)
        }
        (Reference::Numbers(s), Datapoint::Numbers(r)) => set_rule(
            inside,
            r,
            // Exact membership (§3.2): IEEE equality, so 0.0 == -0.0 and NaN matches nothing.
            |x| s.iter().any(|y| y == x),
            limit,
            f64::to_string,
        ),
        (Reference::Strings(s), Datapoint::Strings(r)) => {
            set_rule(inside, r, |x| s.contains(x), limit, String::clone)
        }
        _ => Judgement::default(),
    }
}

/// §4.3: `in-*` violates when any reported element is outside the set, `not-in-*` when any is
/// inside. An empty reported list always conforms.
fn set_rule<T>(
    inside: bool,
    reported: &[T],
    member: impl Fn(&T) -> bool,
    limit: usize,
    show: impl Fn(&T) -> String,
) -> Judgement {
    let mut out = Judgement::default();
    for x in reported.iter().filter(|x| member(x) != inside) {
        out.violating = true;
        if out.offending.len() >= limit {
            break;
        }
        out.offending.push(show(x));
    }
    out
}

/// Port sets are small: a sorted set is enough.
pub type PortSet = BTreeSet<u16>;

#[cfg(test)]
#[path = "operators_tests.rs"]
mod tests;
