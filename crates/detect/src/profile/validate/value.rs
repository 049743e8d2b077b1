//! A behavior's `value` (detect-rules §2.4): the one field, parsed, with its element count;
//! and our extension `cidrsFile` (one CIDR or address per line, `#` comments). Reads that file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::context::Ctx;
use crate::cidr::{Block, CidrSet, parse_block};
use crate::criteria::Reference;

/// MetricValue fields (§2.4) and ours, `cidrsFile`.
const VALUE_KEYS: [&str; 7] = [
    "count",
    "ports",
    "cidrs",
    "number",
    "numbers",
    "strings",
    "cidrsFile",
];

/// The one field of a `value` object.
pub(super) fn value_field<'v>(cx: &mut Ctx, value: &'v Value) -> Option<(&'v str, &'v Value)> {
    let obj = cx.object("criteria.value", value)?;
    cx.keys("criteria.value", obj, &VALUE_KEYS, &[]);
    let fields: Vec<(&str, &Value)> = obj
        .iter()
        .filter(|(k, _)| VALUE_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    match fields.as_slice() {
        [one] => Some(*one),
        [] => {
            cx.err(
                "criteria.value",
                format!("needs one of {}", VALUE_KEYS.join(", ")),
            );
            None
        }
        _ => {
            cx.err("criteria.value", "must hold exactly one field");
            None
        }
    }
}

/// Parses a value field; returns it with its element count (§2.5; cidrsFile entries are ours and
/// not counted) and a digest of file contents for the fingerprint.
pub(super) fn reference(
    cx: &mut Ctx,
    field: &str,
    raw: &Value,
) -> Option<(Reference, usize, String)> {
    let at = format!("criteria.value.{field}");
    let list = |cx: &mut Ctx| -> Option<&Vec<Value>> {
        let l = raw.as_array();
        if l.is_none() {
            cx.err(&at, "must be an array");
        }
        l
    };
    let before = cx.problems.len();
    let out = match field {
        "count" => match raw.as_u64() {
            Some(n) => (Reference::Count(n), 1),
            None => {
                cx.err(&at, format!("{raw} must be an integer >= 0"));
                return None;
            }
        },
        "number" => match raw.as_f64() {
            Some(x) => (Reference::Number(x), 1),
            None => {
                cx.err(&at, format!("{raw} must be a number"));
                return None;
            }
        },
        "ports" => {
            let l = list(cx)?;
            let mut set = BTreeSet::new();
            for (i, p) in l.iter().enumerate() {
                match p.as_u64().filter(|p| *p <= 65535) {
                    Some(p) => {
                        set.insert(p as u16);
                    }
                    None => cx.err(&format!("{at}[{i}]"), format!("{p} is not a port 0-65535")),
                }
            }
            (Reference::Ports(set), l.len())
        }
        "cidrs" => {
            let l = list(cx)?;
            let mut blocks = Vec::with_capacity(l.len());
            for (i, c) in l.iter().enumerate() {
                match c.as_str().map(cidr_entry) {
                    Some(Ok(b)) => blocks.push(b),
                    Some(Err(e)) => cx.err(&format!("{at}[{i}]"), e),
                    None => cx.err(&format!("{at}[{i}]"), "must be a string"),
                }
            }
            (
                Reference::Cidrs(Arc::new(CidrSet::from_blocks(blocks))),
                l.len(),
            )
        }
        "numbers" => {
            let l = list(cx)?;
            let mut xs = Vec::with_capacity(l.len());
            for (i, x) in l.iter().enumerate() {
                match x.as_f64() {
                    Some(x) => xs.push(x),
                    None => cx.err(&format!("{at}[{i}]"), format!("{x} must be a number")),
                }
            }
            (Reference::Numbers(xs.into_iter().collect()), l.len())
        }
        "strings" => {
            let l = list(cx)?;
            let mut set = BTreeSet::new();
            for (i, s) in l.iter().enumerate() {
                match s.as_str() {
                    Some(s) => {
                        set.insert(s.to_string());
                    }
                    None => cx.err(&format!("{at}[{i}]"), "must be a string"),
                }
            }
            (Reference::Strings(set), l.len())
        }
        "cidrsFile" => {
            let Some(p) = raw.as_str() else {
                cx.err(&at, "must be a path");
                return None;
            };
            let set = cidrs_file(cx, &at, &resolve(cx.path, p))?;
            let digest = format!("{:016x}", set.digest());
            return Some((Reference::Cidrs(Arc::new(set)), 0, digest));
        }
        _ => return None,
    };
    (cx.problems.len() == before).then_some((out.0, out.1, String::new()))
}

/// §2.4: 2–43 characters of `[a-fA-F0-9:./]`, and a CIDR or address (inferred).
fn cidr_entry(s: &str) -> Result<Block, String> {
    let chars_ok = (2..=43).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '/'));
    if !chars_ok {
        return Err(format!("{s:?} must be 2-43 characters of [a-fA-F0-9:./]"));
    }
    parse_block(s)
}

/// A relative cidrsFile path is relative to the profile file's directory.
fn resolve(profile: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    match profile.parent() {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    }
}

/// Our extension: one CIDR or address per line, `#` starts a comment, blank lines skipped.
/// Every bad line is named (file:line), at most 20 of them.
fn cidrs_file(cx: &mut Ctx, at: &str, file: &Path) -> Option<CidrSet> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            cx.err(at, format!("cannot read {}: {e}", file.display()));
            return None;
        }
    };
    let mut blocks = Vec::new();
    let mut bad = 0;
    for (n, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        match parse_block(entry) {
            Ok(b) => blocks.push(b),
            Err(e) => {
                bad += 1;
                if bad <= 20 {
                    cx.err(at, format!("{}:{}: {e}", file.display(), n + 1));
                }
            }
        }
    }
    if bad > 20 {
        cx.err(
            at,
            format!("{}: {} more bad lines", file.display(), bad - 20),
        );
    }
    (bad == 0).then(|| CidrSet::from_blocks(blocks))
}
