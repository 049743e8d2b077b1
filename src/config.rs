//! The configuration file: TOML, validated once, errors naming the key.
//! No I/O beyond reading the file.
