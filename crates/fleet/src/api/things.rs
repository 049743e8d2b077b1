//! `GET /things` and `GET /things/{name}` (docs/spec/detect-api.md §5, a detect-fleet
//! extension shaped like ListThings): the registry list shared with `things list`.

use serde_json::{Value, json};

use super::page::{self, Params};
use super::{ApiError, Context, seconds};
use crate::store::{Store, StoreError, Thing, registry};
use crate::targets::Attachments;

/// Every thing registered or seen, by name (what `things list` prints).
pub fn list(store: &mut dyn Store) -> Result<Vec<Thing>, StoreError> {
    store.things()
}

/// One thing as the API shows it.
pub fn thing_json(t: &Thing) -> Value {
    let mut o = json!({
        "thingName": t.name,
        "registered": t.registered,
        "thingGroupNames": t.groups,
    });
    if let (Some(id), Some(ms)) = (t.last_report_id, t.last_report_ms) {
        o["lastReportId"] = id.into();
        o["lastReportTime"] = seconds(ms);
    }
    if let Some(r) = &t.last_rejection {
        o["lastRejection"] = json!({
            "time": seconds(r.time_ms),
            "errorCode": r.code,
            "message": r.message,
        });
    }
    o
}

/// `GET /things` (§5.1): by name, read a page at a time from the store.
pub fn list_json(store: &mut dyn Store, p: &Params) -> Result<Value, ApiError> {
    p.allow(&["maxResults", "nextToken", "thingGroupName"])?;
    let max = p.max_results()?;
    let group = p.name("thingGroupName")?;
    let mut after = p.token("things")?;
    let chunk = if group.is_some() { 1000 } else { max + 1 };
    let mut page = Vec::new();
    let mut more = false;
    'fill: loop {
        let got = store.things_after(after.as_deref(), chunk)?;
        for t in &got {
            after = Some(t.name.clone());
            if group.is_none_or(|g| t.groups.contains(g)) {
                if page.len() == max {
                    more = true;
                    break 'fill;
                }
                page.push(t.clone());
            }
        }
        if got.len() < chunk {
            break;
        }
    }
    let mut out = json!({ "things": page.iter().map(thing_json).collect::<Vec<_>>() });
    if let (true, Some(t)) = (more, page.last()) {
        out["nextToken"] = page::token("things", &t.name).into();
    }
    Ok(out)
}

/// `GET /things/{name}` (§5.2): the thing, the profiles watching it, its active alarms.
pub fn describe(store: &mut dyn Store, ctx: &Context, name: &str) -> Result<Value, ApiError> {
    page::check_name("thingName", name)?;
    let Some(t) = store.thing(name)? else {
        return Err(ApiError::not_found(format!(
            "thing {name:?}: neither registered nor seen"
        )));
    };
    let groups = registry(std::slice::from_ref(&t));
    let watching = Attachments::new(&ctx.attach).for_thing(groups.get(name));
    let q = super::violations::Query {
        active_only: true,
        thing: Some(name.to_string()),
        ..Default::default()
    };
    let (active, _) = super::violations::newest(store, &q, None, page::MAX_RESULTS)?;
    let latest = super::metrics::latest(store, name, t.last_report_ms, ctx.now_ms())?;
    let mut o = thing_json(&t);
    o["lastMetrics"] = latest;
    o["securityProfileNames"] = watching.into();
    o["activeViolations"] = active
        .iter()
        .map(super::violations::active_json)
        .collect::<Vec<_>>()
        .into();
    Ok(o)
}
