//! Logging: a small tracing subscriber writing one line per event to stderr (journald adds the
//! time), text or JSON, level from the config or RUST_LOG (RUST_LOG wins). No spans are used.
//!
//! Hand-written rather than tracing-subscriber's fmt layer: the agent's whole .text is resident
//! (issue #7/#8 RSS target), and the two fmt layers with their registry cost ~70 KiB of code (x86_64-musl).
//! The lines keep tracing-subscriber's shapes: text `LEVEL message key=value …` (strings
//! quoted, `%` values bare), JSON `{"level","fields":{"message",…},"target"}`.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

use detect_agent::config::{LogFormat, LogLevel};

pub fn init(log: &detect_agent::config::Log, quiet: bool) -> anyhow::Result<()> {
    let level = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => v,
        _ if quiet => "warn".to_string(),
        _ => log.level.clone(),
    };
    let filter = LogLevel::parse(&level).map_err(|e| anyhow::anyhow!("log level: {e}"))?;
    let lines = Lines {
        filter,
        json: matches!(log.format, LogFormat::Json),
        // One write per line, so lines from concurrent tasks never interleave; a closed stderr
        // is not a reason to stop.
        write: Box::new(|line| {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }),
    };
    tracing::subscriber::set_global_default(lines)
        .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

struct Lines {
    filter: LogLevel,
    json: bool,
    write: Box<dyn Fn(&str) + Send + Sync>,
}

impl Subscriber for Lines {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // The filter never changes after start: decide once per call site.
        if self.enabled(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        self.filter.enabled(meta.target(), meta.level())
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(self.filter.max().map_or(
            tracing::level_filters::LevelFilter::OFF,
            tracing::level_filters::LevelFilter::from_level,
        ))
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = if self.json {
            json_line(event)
        } else {
            text_line(event)
        };
        if line.is_empty() {
            return;
        }
        line.push('\n');
        (self.write)(&line);
    }
}

fn level_text(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        _ => "ERROR",
    }
}

/// `LEVEL message key=value …`.
fn text_line(event: &Event<'_>) -> String {
    let mut text = Text {
        message: String::new(),
        fields: String::new(),
    };
    event.record(&mut text);
    let mut line = String::with_capacity(8 + text.message.len() + text.fields.len());
    line.push_str(level_text(event.metadata().level()));
    line.push(' ');
    line.push_str(&text.message);
    if text.message.is_empty() {
        line.push_str(text.fields.trim_start());
    } else {
        line.push_str(&text.fields);
    }
    line
}

struct Text {
    message: String,
    fields: String,
}

fn name(field: &Field) -> &str {
    let n = field.name();
    n.strip_prefix("r#").unwrap_or(n)
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let _ = write!(self.fields, " {}={value}", name(field));
        let mut source = value.source();
        if source.is_some() {
            let _ = write!(self.fields, " {}.sources=[", name(field));
            let mut first = true;
            while let Some(s) = source {
                let _ = write!(self.fields, "{}{s}", if first { "" } else { ", " });
                first = false;
                source = s.source();
            }
            self.fields.push(']');
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", name(field));
        }
    }
}

/// `{"level":"INFO","fields":{"message":"…",…},"target":"detect_agent::…"}`.
fn json_line(event: &Event<'_>) -> String {
    let mut fields = Json(serde_json::Map::new());
    event.record(&mut fields);
    let meta = event.metadata();
    let mut out = serde_json::Map::new();
    out.insert("level".into(), meta.level().as_str().into());
    out.insert("fields".into(), serde_json::Value::Object(fields.0));
    out.insert("target".into(), meta.target().into());
    serde_json::Value::Object(out).to_string()
}

struct Json(serde_json::Map<String, serde_json::Value>);

impl Visit for Json {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(name(field).into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(name(field).into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(name(field).into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(name(field).into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(name(field).into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(name(field).into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(name(field).into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines `Lines` writes for the events `f` sends, at level `level`.
    fn capture(json: bool, level: &str, f: impl FnOnce()) -> Vec<String> {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = out.clone();
        let lines = Lines {
            filter: LogLevel::parse(level).unwrap(),
            json,
            write: Box::new(move |line| sink.lock().unwrap().push(line.to_string())),
        };
        tracing::subscriber::with_default(lines, f);
        out.lock().unwrap().clone()
    }

    #[test]
    fn text_lines_keep_the_fmt_layer_shape() {
        let err = std::io::Error::other("disk full");
        let lines = capture(false, "info", || {
            tracing::info!(report_id = 17u64, verdict = "none", path = %"/x y", "report sent");
            tracing::warn!(error = &err as &dyn std::error::Error, "cannot write");
            tracing::error!(metric = "m");
            tracing::debug!("left out at info");
        });
        assert_eq!(
            lines,
            [
                " INFO report sent report_id=17 verdict=\"none\" path=/x y\n",
                " WARN cannot write error=disk full\n",
                "ERROR metric=\"m\"\n",
            ]
        );
    }

    #[test]
    fn json_lines_keep_the_fmt_layer_shape() {
        let lines = capture(true, "warn,detect_agent=trace", || {
            tracing::info!(report_id = 17u64, ok = true, verdict = "a\"b", "sent {}", 3);
        });
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["fields"]["message"], "sent 3");
        assert_eq!(v["fields"]["report_id"], 17);
        assert_eq!(v["fields"]["ok"], true);
        assert_eq!(v["fields"]["verdict"], "a\"b");
        assert!(v["target"].as_str().unwrap().starts_with("detect_agent"));
    }
}
