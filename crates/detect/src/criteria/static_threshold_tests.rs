//! Every operator on every metric type (detect-rules §4.2, §4.3), including empty lists,
//! family mismatches, exact integers and IEEE doubles.

use super::*;
use crate::cidr::parse_block;

fn violates(op: Operator, r: &Reference, d: &Datapoint) -> bool {
    judge(op, r, d, 10).violating
}

#[test]
fn operator_names_round_trip() {
    for op in Operator::ALL {
        assert_eq!(Operator::from_name(op.name()), Some(op));
    }
    assert_eq!(Operator::from_name("less_than"), None);
}

#[test]
fn numeric_operators_describe_normal_on_counts_and_numbers() {
    use Operator::*;
    // (operator, threshold, datapoint, violates): §1 — `less-than-equals 50` alarms at 51.
    let table = [
        (LessThan, 10, 9, false),
        (LessThan, 10, 10, true),
        (LessThanEquals, 50, 50, false),
        (LessThanEquals, 50, 51, true),
        (GreaterThan, 10, 11, false),
        (GreaterThan, 10, 10, true),
        (GreaterThanEquals, 10, 10, false),
        (GreaterThanEquals, 10, 9, true),
    ];
    for (op, t, v, want) in table {
        let c = violates(op, &Reference::Count(t), &Datapoint::Count(v));
        assert_eq!(c, want, "count {v} {} {t}", op.name());
        let n = violates(
            op,
            &Reference::Number(t as f64),
            &Datapoint::Number(v as f64),
        );
        assert_eq!(n, want, "number {v} {} {t}", op.name());
    }
    // Integers compare exactly beyond 2^53.
    let big = (1u64 << 53) + 1;
    assert!(violates(
        LessThanEquals,
        &Reference::Count(big - 1),
        &Datapoint::Count(big)
    ));
    // Doubles as IEEE values: NaN is never normal; -0.0 equals 0.0.
    assert!(violates(
        GreaterThanEquals,
        &Reference::Number(0.0),
        &Datapoint::Number(f64::NAN)
    ));
    assert!(!violates(
        GreaterThanEquals,
        &Reference::Number(0.0),
        &Datapoint::Number(-0.0)
    ));
    assert!(violates(
        LessThan,
        &Reference::Number(0.1 + 0.2),
        &Datapoint::Number(0.30000000000000004)
    ));
}

#[test]
fn port_sets() {
    let s = Reference::Ports([23, 2323].into_iter().collect());
    let d = |p: &[u16]| Datapoint::Ports(p.to_vec());
    assert!(!violates(Operator::NotInPortSet, &s, &d(&[22, 443])));
    assert!(violates(Operator::NotInPortSet, &s, &d(&[22, 23])));
    assert!(!violates(Operator::NotInPortSet, &s, &d(&[])));
    assert!(!violates(Operator::InPortSet, &s, &d(&[23])));
    assert!(violates(Operator::InPortSet, &s, &d(&[23, 80])));
    assert!(
        !violates(Operator::InPortSet, &s, &d(&[])),
        "empty list conforms"
    );
    let j = judge(Operator::InPortSet, &s, &d(&[22, 23, 80]), 10);
    assert_eq!(j.offending, vec!["22", "80"]);
    assert_eq!(
        judge(Operator::InPortSet, &s, &d(&[22, 23, 80]), 1).offending,
        vec!["22"]
    );
}

#[test]
fn cidr_sets_on_addresses() {
    let set =
        CidrSet::from_blocks(["10.0.0.0/8", "2001:db8::/32"].map(|c| parse_block(c).unwrap()));
    let s = Reference::Cidrs(Arc::new(set));
    let d = |a: &[&str]| Datapoint::Addresses(a.iter().map(|x| x.parse().unwrap()).collect());
    assert!(violates(
        Operator::NotInCidrSet,
        &s,
        &d(&["203.0.113.7", "10.1.2.3"])
    ));
    assert!(!violates(Operator::NotInCidrSet, &s, &d(&["203.0.113.7"])));
    assert!(!violates(
        Operator::NotInCidrSet,
        &s,
        &d(&["::ffff:11.0.0.1"])
    ));
    assert!(
        violates(Operator::NotInCidrSet, &s, &d(&["::ffff:10.0.0.1"])),
        "mapped = IPv4"
    );
    assert!(!violates(
        Operator::InCidrSet,
        &s,
        &d(&["10.9.9.9", "2001:db8::1"])
    ));
    assert!(violates(Operator::InCidrSet, &s, &d(&["2001:db9::1"])));
    assert!(
        !violates(Operator::InCidrSet, &s, &d(&[])),
        "empty list conforms"
    );
    assert!(!violates(Operator::NotInCidrSet, &s, &d(&[])));
    // Family mismatch never matches: an IPv6 address is outside an IPv4-only set.
    let v4 = Reference::Cidrs(Arc::new(CidrSet::from_blocks([
        parse_block("0.0.0.0/0").unwrap()
    ])));
    assert!(violates(Operator::InCidrSet, &v4, &d(&["2001:db8::1"])));
    assert!(!violates(Operator::NotInCidrSet, &v4, &d(&["2001:db8::1"])));
}

#[test]
fn number_lists_are_membership_not_comparison() {
    let s = Reference::Numbers([1.0, 2.5, -0.0].into_iter().collect());
    let d = |x: &[f64]| Datapoint::Numbers(x.to_vec());
    assert!(!violates(Operator::InSet, &s, &d(&[1.0, 2.5, 0.0])));
    assert!(violates(Operator::InSet, &s, &d(&[1.0, 2.0])));
    assert!(violates(Operator::NotInSet, &s, &d(&[3.0, 2.5])));
    assert!(!violates(Operator::NotInSet, &s, &d(&[3.0, 2.4999999])));
    assert!(!violates(Operator::InSet, &s, &d(&[])));
    assert!(!violates(Operator::NotInSet, &s, &d(&[])));
    assert!(
        violates(Operator::InSet, &s, &d(&[f64::NAN])),
        "NaN is in no set"
    );
}

#[test]
fn string_lists_match_exactly_and_case_sensitively() {
    let s = Reference::Strings(["net".to_string(), "ota".to_string()].into_iter().collect());
    let d = |x: &[&str]| Datapoint::Strings(x.iter().map(|s| s.to_string()).collect());
    assert!(!violates(Operator::InSet, &s, &d(&["net"])));
    assert!(violates(Operator::InSet, &s, &d(&["NET"])));
    assert!(violates(Operator::NotInSet, &s, &d(&["ssh", "ota"])));
    assert!(!violates(Operator::NotInSet, &s, &d(&["ssh"])));
    assert!(!violates(Operator::InSet, &s, &d(&[])));
    assert!(!violates(Operator::NotInSet, &s, &d(&[])));
}

#[test]
fn a_thousand_number_set_is_searched_not_scanned() {
    // Issue #17 item 6: a 1 000-number set scanned linearly cost 4x a large report. Work is
    // counted (comparisons), not timed: a binary search needs ~10 per reported number.
    use crate::criteria::number_set::PROBES;
    let s = Reference::Numbers((0..1000).map(f64::from).collect());
    let reported: Vec<f64> = (0..1000).map(|i| f64::from(i) + 0.5).collect();
    PROBES.with(|p| p.set(0));
    let j = judge(
        Operator::NotInSet,
        &s,
        &Datapoint::Numbers(reported.clone()),
        1,
    );
    assert!(!j.violating);
    let j = judge(
        Operator::InSet,
        &s,
        &Datapoint::Numbers(reported),
        usize::MAX,
    );
    assert_eq!(j.offending.len(), 1000);
    let probes = PROBES.with(|p| p.get());
    assert!(
        probes <= 2 * 1000 * 11,
        "{probes} comparisons for 2 000 lookups"
    );
}
