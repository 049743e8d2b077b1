//! ListSecurityProfiles, DescribeSecurityProfile (with ML model status) and
//! ListTargetsForSecurityProfile (docs/spec/detect-api.md §4), from the profiles `run` loaded.

use serde_json::{Value, json};

use super::page::{self, Params};
use super::{ApiError, Context, seconds};
use crate::models::Summary;
use crate::store::{Store, StoreError};
use crate::targets::Target;

/// A detect-fleet ARN (§4.1): AWS's layout, `detect-fleet` as the partition, no region or
/// account (there is one fleet).
pub fn arn(resource: &str) -> String {
    format!("arn:detect-fleet:iot:::{resource}")
}

/// `GET /security-profiles` (§4.1): by name.
pub fn list(ctx: &Context, p: &Params) -> Result<Value, ApiError> {
    p.allow(&["maxResults", "nextToken"])?;
    let max = p.max_results()?;
    let after = p.token("security-profiles")?;
    let mut names: Vec<&str> = ctx.profiles.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    let (items, next) = page::cut(
        names,
        |n| n.to_string(),
        after.as_deref(),
        max,
        |k, a| k > a,
    );
    let ids: Vec<Value> = items
        .iter()
        .map(|n| json!({"name": n, "arn": arn(&format!("securityprofile/{n}"))}))
        .collect();
    let mut out = json!({ "securityProfileIdentifiers": ids });
    if let Some(k) = next {
        out["nextToken"] = page::token("security-profiles", &k).into();
    }
    Ok(out)
}

/// The status of every ML behavior (what `models` prints), read from the stored engine
/// states; only `profiles`' behaviors are summed.
pub fn models(
    store: &mut dyn Store,
    profiles: &[detect::Profile],
    now_ms: u64,
) -> Result<Vec<Summary>, StoreError> {
    let records = store.with_state()?;
    Ok(crate::models::summaries(
        profiles,
        records.iter().map(|(t, l)| (t.as_str(), &l.record.states)),
        now_ms,
    ))
}

/// `GET /security-profiles/{name}` (§4.2): the behaviors as given, their model status.
pub fn describe(store: &mut dyn Store, ctx: &Context, name: &str) -> Result<Value, ApiError> {
    page::check_name("securityProfileName", name)?;
    let Some(profile) = ctx.profiles.iter().find(|p| p.name == name) else {
        return Err(ApiError::not_found(format!(
            "security profile {name:?}: not among the loaded profiles"
        )));
    };
    let behaviors: Vec<Value> = profile
        .behaviors
        .iter()
        .map(|b| (*b.json).clone())
        .collect();
    let mut out = json!({
        "securityProfileName": profile.name,
        "securityProfileArn": arn(&format!("securityprofile/{}", profile.name)),
        "behaviors": behaviors,
    });
    let has_ml = profile
        .behaviors
        .iter()
        .any(|b| crate::models::is_ml(&b.json));
    if has_ml {
        let list = models(store, std::slice::from_ref(profile), ctx.now_ms())?;
        let summaries: Vec<Value> = list
            .iter()
            .map(|s| {
                let mut o = json!({
                    "behaviorName": s.behavior_name,
                    "modelStatus": s.model_status,
                    "datapointsCollectionPercentage": s.datapoints_collection_percentage,
                    "thingsActive": s.things_active,
                    "thingsTotal": s.things_total,
                });
                if let Some(ms) = s.last_model_refresh_date {
                    o["lastModelRefreshDate"] = seconds(ms);
                }
                o
            })
            .collect();
        out["behaviorModelTrainingSummaries"] = summaries.into();
    }
    Ok(out)
}

/// `GET /security-profiles/{name}/targets` (§4.3): the `[[attach]]` targets as ARNs.
pub fn targets(ctx: &Context, name: &str, p: &Params) -> Result<Value, ApiError> {
    p.allow(&["maxResults", "nextToken"])?;
    page::check_name("securityProfileName", name)?;
    if !ctx.profiles.iter().any(|p| p.name == name) {
        return Err(ApiError::not_found(format!(
            "security profile {name:?}: not among the loaded profiles"
        )));
    }
    let max = p.max_results()?;
    let after = p.token("targets")?;
    let mut arns: Vec<String> = ctx
        .attach
        .iter()
        .filter(|a| a.profile == name)
        .filter_map(|a| {
            Some(arn(&match Target::parse(&a.target).ok()? {
                Target::AllThings => "all/things".to_string(),
                Target::Registered => "all/registered-things".to_string(),
                Target::Unregistered => "all/unregistered-things".to_string(),
                Target::Group(g) => format!("thinggroup/{g}"),
            }))
        })
        .collect();
    arns.sort();
    arns.dedup();
    let (items, next) = page::cut(arns, String::clone, after.as_deref(), max, |k, a| k > a);
    let list: Vec<Value> = items.iter().map(|a| json!({"arn": a})).collect();
    let mut out = json!({ "securityProfileTargets": list });
    if let Some(k) = next {
        out["nextToken"] = page::token("targets", &k).into();
    }
    Ok(out)
}
