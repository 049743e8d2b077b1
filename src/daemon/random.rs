//! Randomness for the daemon (kernel bits and seed from the link crate): violation ids with
//! the detect engine's seeded sequence as fallback, and the reconnect jitter seed.

use crate::detect::engine::{IdSource, seeded_ids};

pub use link::random::seed;

/// The daemon's violation-id source: 128 kernel bits per id (`link::random::ids`).
pub fn ids() -> IdSource {
    link::random::ids(seeded_ids)
}
