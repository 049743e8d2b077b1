//! The static criterion (detect-rules §2.3, §2.4): an operator and a fixed `value`, and
//! whether a datapoint violates it (§4.2 numbers, §4.3 sets). Keeps no state.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use super::number_set::NumberSet;
use crate::cidr::CidrSet;
use crate::metrics::Datapoint;
use crate::operators::Operator;

/// `comparisonOperator` with a `value`: criteria describe NORMAL behaviour (§1), so a
/// datapoint violates when the condition is false.
#[derive(Debug, Clone)]
pub struct StaticThreshold {
    pub operator: Operator,
    pub reference: Reference,
}

/// The `value` of a behavior, parsed (§2.4, plus our `cidrsFile`).
#[derive(Debug, Clone)]
pub enum Reference {
    Count(u64),
    Number(f64),
    Ports(PortSet),
    /// From `cidrs` or from our `cidrsFile` extension; shared, it may hold 100 000 blocks.
    Cidrs(Arc<CidrSet>),
    /// Sorted at load: membership is a binary search (a set may hold thousands).
    Numbers(NumberSet),
    Strings(BTreeSet<String>),
}

/// Port sets are small: a sorted set is enough.
pub type PortSet = BTreeSet<u16>;

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
            |x| s.contains(*x),
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

#[cfg(test)]
#[path = "static_threshold_tests.rs"]
mod tests;
