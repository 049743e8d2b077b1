//! The problems and warnings found while checking one profile document, with the file and
//! behavior they name, and the small checks every part uses (keys, names, types).

use std::path::Path;

use serde_json::{Map, Value};

use crate::profile::model::{Problem, Warning};
use protocol::keys::is_name;

/// Where the checks are (file, behavior) and what they found.
pub(super) struct Ctx<'a> {
    pub(super) path: &'a Path,
    pub(super) behavior: Option<String>,
    pub(super) problems: Vec<Problem>,
    pub(super) warnings: Vec<Warning>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(path: &'a Path) -> Self {
        Ctx {
            path,
            behavior: None,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn item(&self, field: &str, message: String) -> Problem {
        Problem {
            path: self.path.to_path_buf(),
            behavior: self.behavior.clone(),
            field: field.to_string(),
            message,
        }
    }

    pub(super) fn err(&mut self, field: &str, message: impl Into<String>) {
        let p = self.item(field, message.into());
        self.problems.push(p);
    }

    pub(super) fn warn(&mut self, field: &str, message: impl Into<String>) {
        let p = self.item(field, message.into());
        self.warnings.push(p);
    }

    /// Flags keys outside `known` (and not in `ignored`) as unknown.
    pub(super) fn keys(
        &mut self,
        field: &str,
        obj: &Map<String, Value>,
        known: &[&str],
        ignored: &[&str],
    ) {
        for k in obj.keys() {
            if !known.contains(&k.as_str()) && !ignored.contains(&k.as_str()) {
                let at = if field.is_empty() {
                    k.clone()
                } else {
                    format!("{field}.{k}")
                };
                self.err(&at, format!("unknown key (known: {})", known.join(", ")));
            }
        }
    }

    pub(super) fn object<'v>(
        &mut self,
        field: &str,
        v: &'v Value,
    ) -> Option<&'v Map<String, Value>> {
        let o = v.as_object();
        if o.is_none() {
            self.err(field, "must be an object");
        }
        o
    }

    pub(super) fn name(
        &mut self,
        field: &str,
        v: Option<&Value>,
        required: bool,
    ) -> Option<String> {
        match v {
            None if required => {
                self.err(field, "is required");
                None
            }
            None => None,
            Some(Value::String(s)) if is_name(s) => Some(s.clone()),
            Some(Value::String(s)) => {
                self.err(
                    field,
                    format!("{s:?} must be 1-128 characters of [a-zA-Z0-9:_-]"),
                );
                None
            }
            Some(_) => {
                self.err(field, "must be a string");
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, field: &str, v: Option<&Value>) -> bool {
        match v {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.err(field, "must be true or false");
                false
            }
        }
    }

    pub(super) fn string_len(&mut self, field: &str, v: Option<&Value>, min: usize, max: usize) {
        match v {
            None => self.err(field, "is required"),
            Some(Value::String(s)) if (min..=max).contains(&s.chars().count()) => {}
            Some(Value::String(_)) => self.err(field, format!("must be {min}-{max} characters")),
            Some(_) => self.err(field, "must be a string"),
        }
    }
}
