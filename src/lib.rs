//! detect-agent: samples one Linux device's network behaviour and reports it as AWS IoT
//! Device Defender metrics. Data flows one way: collect → report → detect → publish, with
//! state, daemon and cli on top; a lower module never imports a higher one
//! (scripts/check-imports). The Detect engine is the `detect-engine` crate, re-exported here.

pub mod collect;
pub mod config;
pub mod daemon;
pub mod identity;
pub mod publish;
pub mod report;
pub mod state;

pub use ::detect;
