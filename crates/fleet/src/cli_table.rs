//! Plain-text tables for `violations`, `models` and `things list`, times as UTC ISO 8601 for a person
//! (`--format json` keeps epoch milliseconds). Formatting only.

use crate::store::{Thing, Violation};

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for r in &rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

pub fn violations(list: &[Violation]) -> String {
    let rows = list
        .iter()
        .map(|v| {
            vec![
                v.violation_id.clone(),
                v.thing_name.clone(),
                v.security_profile_name.clone(),
                v.behavior
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("?")
                    .to_string(),
                utc(v.violation_start_time),
                v.end_event_type.clone().unwrap_or_else(|| "active".into()),
                v.verification_state.clone(),
            ]
        })
        .collect();
    table(
        &[
            "VIOLATION_ID",
            "THING",
            "PROFILE",
            "BEHAVIOR",
            "START",
            "STATE",
            "VERIFICATION",
        ],
        rows,
    )
}

pub fn things(list: &[Thing]) -> String {
    let rows = list
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                if t.registered { "yes" } else { "no" }.to_string(),
                t.groups.iter().cloned().collect::<Vec<_>>().join(","),
                t.last_report_id.map(|i| i.to_string()).unwrap_or_default(),
                t.last_report_ms.map(utc).unwrap_or_default(),
                t.last_rejection
                    .as_ref()
                    .map(|r| utc(r.time_ms))
                    .unwrap_or_default(),
                t.last_rejection
                    .as_ref()
                    .map(|r| printable(&format!("{}: {}", r.code, r.message)))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "THING",
            "REGISTERED",
            "GROUPS",
            "LAST_REPORT_ID",
            "LAST_REPORT",
            "LAST_REJECTED",
            "REJECTION",
        ],
        rows,
    )
}

pub fn models(list: &[crate::models::Summary]) -> String {
    let rows = list
        .iter()
        .map(|s| {
            vec![
                s.security_profile_name.clone(),
                s.behavior_name.clone(),
                s.metric.clone(),
                s.model_status.to_string(),
                format!("{} %", s.datapoints_collection_percentage),
                s.last_model_refresh_date.map(utc).unwrap_or_default(),
                format!("{}/{}", s.things_active, s.things_total),
                match (s.group_calibrated, s.peer_comparison) {
                    (_, true) => "yes+peers",
                    (true, false) => "yes",
                    (false, false) => "no",
                }
                .to_string(),
            ]
        })
        .collect();
    table(
        &[
            "PROFILE",
            "BEHAVIOR",
            "METRIC",
            "STATUS",
            "COLLECTED",
            "LAST_REFRESH",
            "THINGS_ACTIVE",
            "GROUP",
        ],
        rows,
    )
}

/// `s` with control characters (a device's own key names may hold some) shown as `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Epoch milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds).
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (year, month, day) = protocol::civil::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_show_utc_iso_8601_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_555_454_260), "2026-12-06T11:10:54Z");
        let t = Thing {
            name: "gw".into(),
            registered: false,
            groups: Default::default(),
            last_report_id: Some(9),
            last_report_ms: Some(1_796_555_454_260),
            last_rejection: Some(crate::store::LastRejection::new(
                1_796_555_454_260,
                "InvalidPayload",
                "key \"\u{1b}[2J\"",
            )),
        };
        let out = things(&[t]);
        assert!(out.starts_with("THING"), "{out}");
        assert!(
            out.contains("LAST_REPORT ") || out.contains("LAST_REPORT\n"),
            "{out}"
        );
        assert!(!out.contains("_MS"), "{out}");
        assert!(out.contains("InvalidPayload: key \"?[2J\""), "{out}");
        assert!(out.contains("2026-12-06T11:10:54Z"), "{out}");
    }
}
