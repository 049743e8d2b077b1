//! Query parameters and paging (docs/spec/detect-api.md §1.1, §1.5): each value checked with
//! a message naming the parameter, `maxResults` 1–250, `nextToken` opaque and bound to its call.

use super::ApiError;

/// Results per page when `maxResults` is absent; AWS's range is 1–250 (§1.5).
pub const DEFAULT_MAX_RESULTS: usize = 25;
pub const MAX_RESULTS: usize = 250;

/// The decoded query of one request.
pub struct Params<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Params<'a> {
    /// Refuses a parameter given twice.
    pub fn new(pairs: &'a [(String, String)]) -> Result<Params<'a>, ApiError> {
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(o, _)| o == k) {
                return Err(ApiError::invalid(format!("{k}: given more than once")));
            }
        }
        Ok(Params { pairs })
    }

    /// Refuses a parameter the call does not take (a misspelt filter would list everything).
    pub fn allow(&self, known: &[&str]) -> Result<(), ApiError> {
        match self
            .pairs
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            Some((k, _)) => Err(ApiError::invalid(format!(
                "{k}: not a parameter of this call (it takes {})",
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A thing, profile or behavior name: 1–128 of `[a-zA-Z0-9:_-]` (AWS's pattern).
    pub fn name(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => check_name(name, v).map(Some),
        }
    }

    /// One of `allowed`, spelt exactly.
    pub fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if allowed.contains(&v) => Ok(Some(v)),
            Some(v) => Err(ApiError::invalid(format!(
                "{name}: {v:?} is not one of {}",
                allowed.join(", ")
            ))),
        }
    }

    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid(format!(
                "{name}: {v:?} is not true or false"
            ))),
        }
    }

    /// An AWS JSON date: epoch seconds, fractions allowed (§1.4); as epoch milliseconds.
    pub fn time(&self, name: &str) -> Result<Option<u64>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.parse::<f64>() {
            Ok(s) if s.is_finite() && (0.0..=1e12).contains(&s) => {
                Ok(Some((s * 1000.0).round() as u64))
            }
            _ => Err(ApiError::invalid(format!(
                "{name}: {v:?} is not a time in epoch seconds (e.g. 1796555454 or 1796555454.25)"
            ))),
        }
    }

    pub fn required_time(&self, name: &str) -> Result<u64, ApiError> {
        self.time(name)?
            .ok_or_else(|| ApiError::invalid(format!("{name}: required (epoch seconds)")))
    }

    /// `maxResults`: 1–250, default 25.
    pub fn max_results(&self) -> Result<usize, ApiError> {
        let Some(v) = self.get("maxResults") else {
            return Ok(DEFAULT_MAX_RESULTS);
        };
        match v.parse::<usize>() {
            Ok(n) if (1..=MAX_RESULTS).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(format!(
                "maxResults: {v:?} is not a whole number from 1 to {MAX_RESULTS}"
            ))),
        }
    }

    /// The position a `nextToken` of `call` carries, if one was given.
    pub fn token(&self, call: &str) -> Result<Option<String>, ApiError> {
        let Some(v) = self.get("nextToken") else {
            return Ok(None);
        };
        let bad = || ApiError::invalid("nextToken: not a token this call returned".to_string());
        let text = unhex(v).ok_or_else(bad)?;
        let (c, key) = text.split_once('\n').ok_or_else(bad)?;
        if c != call {
            return Err(bad());
        }
        Ok(Some(key.to_string()))
    }
}

pub fn check_name<'v>(what: &str, v: &'v str) -> Result<&'v str, ApiError> {
    if protocol::identity::is_registry_name(v) {
        Ok(v)
    } else {
        Err(ApiError::invalid(format!(
            "{what}: {:?} is not 1–128 characters of [a-zA-Z0-9:_-]",
            v.chars().take(140).collect::<String>()
        )))
    }
}

/// The opaque token for the page after `key` in `call`'s order.
pub fn token(call: &str, key: &str) -> String {
    format!("{call}\n{key}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) || s.len() > 2048 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// A page of `items` (already in the call's order) after `after`, at most `max`: the page and
/// the key of its last item when more follow.
pub fn cut<T>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> String,
    after: Option<&str>,
    max: usize,
    is_after: impl Fn(&str, &str) -> bool,
) -> (Vec<T>, Option<String>) {
    let mut page = Vec::with_capacity(max.min(256));
    let mut more = false;
    for item in items {
        if let Some(a) = after
            && !is_after(&key(&item), a)
        {
            continue;
        }
        if page.len() == max {
            more = true;
            break;
        }
        page.push(item);
    }
    let next = if more { page.last().map(&key) } else { None };
    (page, next)
}
