//! The web console's assets, inside the binary (issue #21 item 3): a placeholder until the
//! `console` branch lands; it serves one page saying so.

const PLACEHOLDER: &[u8] = b"<!doctype html><meta charset=utf-8><title>detect-fleet</title><p>detect-fleet: the console is not built into this binary yet; /metrics and /api/v1/ are served.</p>\n";

/// The asset at `path` (without the query; "/" is index.html): (content type, bytes).
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    match path {
        "/" | "/index.html" => Some(("text/html; charset=utf-8", PLACEHOLDER)),
        _ => None,
    }
}
