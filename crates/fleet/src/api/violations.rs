//! ListActiveViolations, ListViolationEvents and PutVerificationStateOnViolation
//! (docs/spec/detect-api.md §3): the filtered lists, shared with the CLI's `violations`, and
//! their AWS JSON.

use serde_json::{Value, json};

use super::page::{self, Params};
use super::{ApiError, seconds};
use crate::store::{EventQuery, Filter, Listed, Store, StoreError, Violation};

pub const CRITERIA: [&str; 3] = ["STATIC", "STATISTICAL", "MACHINE_LEARNING"];
pub const VERIFICATION: [&str; 4] = [
    "FALSE_POSITIVE",
    "BENIGN_POSITIVE",
    "TRUE_POSITIVE",
    "UNKNOWN",
];
/// AWS's limit on `verificationStateDescription` (detect-rules §6.4).
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

/// The filters of the violation lists (§3.1); `None` lets everything through.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub active_only: bool,
    pub thing: Option<String>,
    pub profile: Option<String>,
    /// `STATIC`, `STATISTICAL` or `MACHINE_LEARNING` (from the behavior's criteria).
    pub criteria: Option<String>,
    /// `Some(true)`: suppressed alarms only; `Some(false)`: the others only (§3.1).
    pub suppressed: Option<bool>,
    pub verification: Option<String>,
}

impl Query {
    fn matches(&self, v: &Violation) -> bool {
        self.criteria
            .as_deref()
            .is_none_or(|c| c == criteria_type(&v.behavior))
            && self.suppressed.is_none_or(|s| s == v.suppressed)
            && self
                .verification
                .as_deref()
                .is_none_or(|s| s == v.verification_state)
    }
}

/// The behavior criteria type AWS filters by (§3.1).
pub fn criteria_type(behavior: &Value) -> &'static str {
    if behavior.pointer("/criteria/mlDetectionConfig").is_some() {
        "MACHINE_LEARNING"
    } else if behavior.pointer("/criteria/statisticalThreshold").is_some() {
        "STATISTICAL"
    } else {
        "STATIC"
    }
}

/// Violations passing `q`, oldest start first (the CLI's order; the API pages newest first).
pub fn list(store: &mut dyn Store, q: &Query) -> Result<Vec<Violation>, StoreError> {
    let mut all = store.violations(&Filter {
        active_only: q.active_only,
        thing: q.thing.clone(),
        profile: q.profile.clone(),
    })?;
    all.retain(|v| q.matches(v));
    Ok(all)
}

/// One page of the violations passing `q`, newest first, after `after` (start time, id):
/// the page and whether more follow. Reads the store's newest-first pages in chunks while
/// filters the store does not know (criteria, suppression, verification) skip some.
pub fn newest(
    store: &mut dyn Store,
    q: &Query,
    after: Option<(u64, String)>,
    max: usize,
) -> Result<(Vec<Violation>, bool), StoreError> {
    let f = Filter {
        active_only: q.active_only,
        thing: q.thing.clone(),
        profile: q.profile.clone(),
    };
    let filtered = q.criteria.is_some() || q.suppressed.is_some() || q.verification.is_some();
    let chunk = if filtered { CHUNK } else { max + 1 };
    let mut cursor = after;
    let mut page = Vec::new();
    loop {
        let at = cursor.as_ref().map(|(t, id)| (*t, id.as_str()));
        let got = store.violations_newest(&f, at, chunk)?;
        let n = got.len();
        for v in got {
            cursor = Some((v.violation_start_time, v.violation_id.clone()));
            if q.matches(&v) {
                if page.len() == max {
                    return Ok((page, true));
                }
                page.push(v);
            }
        }
        if n < chunk {
            return Ok((page, false));
        }
    }
}

/// `GET /active-violations` (§3.1).
pub fn list_active(store: &mut dyn Store, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "thingName",
        "securityProfileName",
        "behaviorCriteriaType",
        "listSuppressedAlerts",
        "verificationState",
        "maxResults",
        "nextToken",
    ])?;
    let q = Query {
        active_only: true,
        thing: p.name("thingName")?.map(str::to_string),
        profile: p.name("securityProfileName")?.map(str::to_string),
        criteria: p
            .one_of("behaviorCriteriaType", &CRITERIA)?
            .map(str::to_string),
        suppressed: p.boolean("listSuppressedAlerts")?,
        verification: p
            .one_of("verificationState", &VERIFICATION)?
            .map(str::to_string),
    };
    let max = p.max_results()?;
    let after = match p.token("active-violations")? {
        None => None,
        Some(k) => {
            let bad = || ApiError::invalid("nextToken: not a token this call returned");
            let (t, id) = k.split_once(':').ok_or_else(bad)?;
            Some((t.parse().map_err(|_| bad())?, id.to_string()))
        }
    };
    let (items, more) = newest(store, &q, after, max)?;
    let list: Vec<Value> = items.iter().map(active_json).collect();
    let mut out = json!({ "activeViolations": list });
    if let (true, Some(v)) = (more, items.last()) {
        let key = format!("{}:{}", v.violation_start_time, v.violation_id);
        out["nextToken"] = page::token("active-violations", &key).into();
    }
    Ok(out)
}

/// AWS's ActiveViolation (§3.1).
pub fn active_json(v: &Violation) -> Value {
    let mut o = json!({
        "violationId": v.violation_id,
        "thingName": v.thing_name,
        "securityProfileName": v.security_profile_name,
        "behavior": v.behavior,
        "violationStartTime": seconds(v.violation_start_time),
        "lastViolationTime": seconds(v.last_violation_time),
        "verificationState": v.verification_state,
    });
    if let Some(x) = &v.last_violation_value {
        o["lastViolationValue"] = x.clone();
    }
    if let Some(d) = &v.verification_state_description {
        o["verificationStateDescription"] = d.clone().into();
    }
    if let Some(info) = detect::AdditionalInfo::of(&v.behavior) {
        o["violationEventAdditionalInfo"] = json!({"confidenceLevel": info.confidence_level});
    }
    o
}

/// Events read per store call while a page fills (filters on the behavior apply after).
const CHUNK: usize = 250;

/// `GET /violation-events` (§3.2): by event time, oldest first.
pub fn list_events(store: &mut dyn Store, p: &Params) -> Result<Value, ApiError> {
    p.allow(&[
        "startTime",
        "endTime",
        "thingName",
        "securityProfileName",
        "behaviorName",
        "behaviorCriteriaType",
        "listSuppressedAlerts",
        "verificationState",
        "maxResults",
        "nextToken",
    ])?;
    let start_ms = p.required_time("startTime")?;
    let end_ms = p.required_time("endTime")?;
    if end_ms <= start_ms {
        return Err(ApiError::invalid("endTime: must be after startTime"));
    }
    let criteria = p.one_of("behaviorCriteriaType", &CRITERIA)?;
    // A detect-fleet extension (§3.2): AWS's call has no behavior name filter.
    let behavior = p.name("behaviorName")?;
    let suppressed = p.boolean("listSuppressedAlerts")?;
    let verification = p.one_of("verificationState", &VERIFICATION)?;
    let max = p.max_results()?;
    let after = match p.token("violation-events")? {
        None => None,
        Some(k) => {
            let bad = || ApiError::invalid("nextToken: not a token this call returned");
            let (t, id) = k.split_once(':').ok_or_else(bad)?;
            Some((
                t.parse().map_err(|_| bad())?,
                id.parse().map_err(|_| bad())?,
            ))
        }
    };
    let mut q = EventQuery {
        start_ms,
        end_ms,
        thing: p.name("thingName")?.map(str::to_string),
        profile: p.name("securityProfileName")?.map(str::to_string),
        after,
        limit: CHUNK,
    };
    let mut page = Vec::new();
    let mut more = false;
    'fill: loop {
        let chunk = store.events(&q)?;
        for l in &chunk {
            let keep = criteria.is_none_or(|c| c == criteria_type(&l.event.behavior))
                && behavior.is_none_or(|b| l.event.behavior["name"] == b)
                && suppressed.is_none_or(|s| s == l.suppressed)
                && verification.is_none_or(|v| v == l.verification_state);
            if keep {
                if page.len() == max {
                    // Another event passes: there is a next page.
                    more = true;
                    break 'fill;
                }
                page.push(l.clone());
            }
            q.after = Some((l.event.violation_event_time, l.position));
        }
        if chunk.len() < CHUNK {
            break;
        }
    }
    let list: Vec<Value> = page.iter().map(event_json).collect();
    let mut out = json!({ "violationEvents": list });
    if let (true, Some(l)) = (more, page.last()) {
        let key = format!("{}:{}", l.event.violation_event_time, l.position);
        out["nextToken"] = page::token("violation-events", &key).into();
    }
    Ok(out)
}

/// AWS's ViolationEvent (§3.2).
pub fn event_json(l: &Listed) -> Value {
    let e = &l.event;
    let mut o = json!({
        "violationId": e.violation_id,
        "thingName": e.thing_name,
        "securityProfileName": e.security_profile_name,
        "behavior": e.behavior,
        "violationEventType": e.violation_event_type.name(),
        "violationEventTime": seconds(e.violation_event_time),
        "verificationState": l.verification_state,
    });
    if let Some(v) = &e.metric_value {
        o["metricValue"] = serde_json::to_value(v).unwrap_or(Value::Null);
    }
    if let Some(d) = &l.verification_state_description {
        o["verificationStateDescription"] = d.clone().into();
    }
    if let Some(info) = &e.violation_event_additional_info {
        o["violationEventAdditionalInfo"] = json!({"confidenceLevel": info.confidence_level});
    }
    o
}

/// The body of PutVerificationStateOnViolation.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Verification {
    verification_state: String,
    verification_state_description: Option<String>,
}

/// Checks a verification state and description (§3.3, detect-rules §6.4); the CLI's `verify`
/// asks the same.
pub fn check_verification(state: &str, description: Option<&str>) -> Result<(), String> {
    if !VERIFICATION.contains(&state) {
        return Err(format!(
            "verificationState: {state:?} is not one of {}",
            VERIFICATION.join(", ")
        ));
    }
    if let Some(d) = description
        && (d.chars().count() > MAX_DESCRIPTION_CHARS || d.chars().any(char::is_control))
    {
        return Err(format!(
            "verificationStateDescription: at most {MAX_DESCRIPTION_CHARS} characters, no control characters"
        ));
    }
    Ok(())
}

/// `POST /violations/verification-state/{violationId}` (§3.3): needs the token.
pub fn put_verification(
    store: &mut dyn Store,
    id: &str,
    body: &[u8],
    may_change: bool,
) -> Result<Value, ApiError> {
    if !may_change {
        return Err(ApiError::unauthorized(
            "changes need `Authorization: Bearer <token>` with the token of [http] token_file",
        ));
    }
    if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::invalid(format!(
            "violationId: {:?} is not 1–128 letters and digits",
            id.chars().take(140).collect::<String>()
        )));
    }
    let v: Verification = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(format!(
            "body: expected {{\"verificationState\": ..., \"verificationStateDescription\": ...}}: {e}"
        ))
    })?;
    let description = v.verification_state_description.as_deref();
    check_verification(&v.verification_state, description).map_err(ApiError::invalid)?;
    if !store.verify(id, &v.verification_state, description)? {
        return Err(ApiError::not_found(format!("violation {id:?}: not found")));
    }
    store.sync()?;
    Ok(json!({}))
}
