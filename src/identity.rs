//! Thing name / MQTT client ID rules (protocol doc §4, §7.1 item 14), defined once in the
//! protocol crate and re-exported here under their old path.

pub use protocol::identity::*;
