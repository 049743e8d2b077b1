//! Which profiles watch which thing (detect-rules §7): `[[attach]]` targets `all-things`,
//! `registered`, `unregistered`, `group:NAME`, at most 5 profiles per target (§2.5). Knows the
//! registry only as the `Registration` passed in; does not load profiles.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Attach;

/// Profiles AWS attaches to one target (detect-rules §2.5).
pub const MAX_PER_TARGET: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    AllThings,
    Registered,
    Unregistered,
    Group(String),
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, String> {
        match s {
            "all-things" => Ok(Target::AllThings),
            "registered" => Ok(Target::Registered),
            "unregistered" => Ok(Target::Unregistered),
            _ => match s.strip_prefix("group:") {
                Some(g) if protocol::identity::is_registry_name(g) => {
                    Ok(Target::Group(g.to_string()))
                }
                _ => Err(format!(
                    "target {s:?}: expected all-things, registered, unregistered or group:NAME (NAME of [a-zA-Z0-9:_-], 1–128)"
                )),
            },
        }
    }

    fn covers(&self, thing: Option<&BTreeSet<String>>) -> bool {
        match (self, thing) {
            (Target::AllThings, _) => true,
            (Target::Registered, r) => r.is_some(),
            (Target::Unregistered, r) => r.is_none(),
            (Target::Group(g), Some(groups)) => groups.contains(g),
            (Target::Group(_), None) => false,
        }
    }
}

/// Checks `[[attach]]`: targets parse, a profile is attached once per target, ≤ 5 per target.
pub fn check(attach: &[Attach]) -> Result<(), String> {
    let mut per_target: BTreeMap<Target, Vec<&str>> = BTreeMap::new();
    for (i, a) in attach.iter().enumerate() {
        let t = Target::parse(&a.target).map_err(|e| format!("[[attach]] #{}: {e}", i + 1))?;
        let list = per_target.entry(t).or_default();
        if list.contains(&a.profile.as_str()) {
            return Err(format!(
                "[[attach]] #{}: profile {:?} is already attached to {:?}",
                i + 1,
                a.profile,
                a.target
            ));
        }
        list.push(&a.profile);
        if list.len() > MAX_PER_TARGET {
            return Err(format!(
                "[[attach]] target {:?}: more than {MAX_PER_TARGET} profiles (detect-rules §2.5)",
                a.target
            ));
        }
    }
    Ok(())
}

/// The parsed attachments.
#[derive(Debug, Clone, Default)]
pub struct Attachments(Vec<(String, Target)>);

impl Attachments {
    /// From a config already checked by `check`; unparsable targets are skipped.
    pub fn new(attach: &[Attach]) -> Attachments {
        Attachments(
            attach
                .iter()
                .filter_map(|a| Some((a.profile.clone(), Target::parse(&a.target).ok()?)))
                .collect(),
        )
    }

    /// Profile names watching a thing with these groups (`None`: not registered), sorted,
    /// each once.
    pub fn for_thing(&self, groups: Option<&BTreeSet<String>>) -> Vec<String> {
        let set: BTreeSet<&str> = self
            .0
            .iter()
            .filter(|(_, t)| t.covers(groups))
            .map(|(p, _)| p.as_str())
            .collect();
        set.into_iter().map(str::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(p: &str, t: &str) -> Attach {
        Attach {
            profile: p.into(),
            target: t.into(),
        }
    }

    #[test]
    fn targets_pick_their_things() {
        let at = Attachments::new(&[
            a("all", "all-things"),
            a("reg", "registered"),
            a("unreg", "unregistered"),
            a("gw", "group:gateways"),
        ]);
        let gw: BTreeSet<String> = ["gateways".to_string()].into();
        assert_eq!(at.for_thing(None), ["all", "unreg"]);
        assert_eq!(at.for_thing(Some(&BTreeSet::new())), ["all", "reg"]);
        assert_eq!(at.for_thing(Some(&gw)), ["all", "gw", "reg"]);
    }

    #[test]
    fn six_profiles_on_one_target_are_refused() {
        let six: Vec<_> = (0..6).map(|i| a(&format!("p{i}"), "group:g")).collect();
        assert!(check(&six[..5]).is_ok());
        assert!(check(&six).unwrap_err().contains("more than 5"));
        assert!(check(&[a("p", "group:")]).is_err());
        assert!(check(&[a("p", "everything")]).is_err());
    }
}
