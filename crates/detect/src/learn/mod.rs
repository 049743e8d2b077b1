//! The learned model of ML Detect behaviors (docs/ml.md, detect-rules §5): fixed-point maths,
//! the calibrated tail, the seasonal model, its explanation and its bytes. No I/O.

pub mod bucket;
pub mod calibrate;
pub mod explain;
pub mod fixed;
pub mod group;
pub mod model;
pub mod peers;
pub mod persist;
pub mod status;
pub mod stored;

pub use calibrate::{Confidence, Group};
pub use explain::Finding;
pub use model::{Model, Unit};
pub use stored::StoredModel;

#[cfg(test)]
mod tests;
