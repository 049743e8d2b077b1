//! detect-agent: samples one Linux device's network behaviour and reports it as AWS IoT
//! Device Defender metrics. Data flows one way: collect → report → publish, with state,
//! daemon and cli on top; a lower module never imports a higher one.

pub mod collect;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod identity;
pub mod publish;
pub mod report;
pub mod state;
