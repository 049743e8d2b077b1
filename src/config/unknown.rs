//! Unknown keys: serde_ignored reports each key no struct field reads, and this names it as a
//! person writes it. Which keys exist is the structs' business, not this file's.

/// A key's place in the file as a person writes it: `mqtt.username`, `custom_metrics[1].name`
/// (serde_ignored's own form shows `Option` layers as `?`).
pub(super) fn dotted(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", dotted(parent)),
        Path::Map { parent, key } => match dotted(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => dotted(parent),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn every_unknown_key_is_listed_once_with_its_table() {
        let err = parse(
            "thingname = \"a\"\n[mqtt]\nendpoint = \"h\"\nca_file = \"c\"\nuser = \"u\"\n\
             [report]\ninterval_sec = 5\nformat = \"json\"\n[colect]\nx = 1\n[log]\nlevel = \"info\"\nfmt = \"json\"\n",
        )
        .unwrap_err();
        let ConfigError::UnknownKeys { keys, .. } = &err else {
            panic!("{err}")
        };
        let mut keys = keys.clone();
        keys.sort();
        assert_eq!(
            keys,
            [
                "colect",
                "log.fmt",
                "mqtt.user",
                "report.interval_sec",
                "thingname"
            ]
        );
        assert!(err.to_string().contains("test.toml"), "{err}");
    }
}
