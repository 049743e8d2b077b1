//! The ten comparison operators (detect-rules §2.3): names, and what each means for numbers
//! (§4.2) and sets (§4.3). Applying one to a datapoint: `criteria/static_threshold.rs`.

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
    pub(super) fn wants_inside(self) -> bool {
        matches!(
            self,
            Operator::InCidrSet | Operator::InPortSet | Operator::InSet
        )
    }

    /// Normal-when for numbers (§4.2); integers exact, doubles as IEEE values (a NaN is never
    /// normal).
    pub(super) fn holds<T: PartialOrd>(self, v: T, t: T) -> bool {
        match self {
            Operator::LessThan => v < t,
            Operator::LessThanEquals => v <= t,
            Operator::GreaterThan => v > t,
            Operator::GreaterThanEquals => v >= t,
            _ => false,
        }
    }
}
