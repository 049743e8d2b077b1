//! Plain-text tables for `violations` and `things list`. Formatting only.

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
                v.violation_start_time.to_string(),
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
            "START_MS",
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
                t.last_report_ms.map(|i| i.to_string()).unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "THING",
            "REGISTERED",
            "GROUPS",
            "LAST_REPORT_ID",
            "LAST_REPORT_MS",
        ],
        rows,
    )
}
