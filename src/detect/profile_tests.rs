//! Loader tests: the §2.7 and §9 profiles load; every §2 rule rejects with one line naming
//! file, behavior and field; warnings for what the device does not evaluate; cidrsFile.

use super::*;

fn parse_text(text: &str) -> Result<(Profile, Vec<Warning>), ProfileError> {
    parse(text, Path::new("/p/edge.json"))
}

#[test]
fn the_worked_example_profile_loads() {
    let (p, w) = parse_text(include_str!(
        "../../tests/fixtures/detect-worked-example/profile.json"
    ))
    .unwrap();
    assert_eq!(p.name, "edge-baseline");
    assert_eq!(p.behaviors.len(), 4);
    assert!(w.is_empty(), "{w:?}");
    assert!(p.behaviors.iter().all(|b| b.rule.is_some()));
}
