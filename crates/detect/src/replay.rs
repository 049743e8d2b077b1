//! Replaying one device's recorded reports, as `detect-agent evaluate` does: each report one
//! datapoint at its `report_id` read as epoch ms, in the order given, violation ids seeded.

use protocol::Report;

use super::engine::Engine;
use super::event::Event;
use super::ids::seeded_ids;
use super::profile::Profile;

/// The replay draws violation ids from this fixed seed: the same input gives the same output.
pub const REPLAY_ID_SEED: u64 = 0x6465_7465_6374;

/// The events of `reports` evaluated in order by a fresh engine for `thing`. The agent's
/// daemon evaluates the report it publishes at the same time (its `report_id`), with the
/// traffic since the previous sample as `network_stats` (docs/detect.md, "In the daemon").
pub fn replay(thing: &str, profiles: Vec<Profile>, reports: &[Report]) -> Vec<Event> {
    let mut engine = Engine::new(thing, profiles, seeded_ids(REPLAY_ID_SEED));
    reports
        .iter()
        .flat_map(|r| engine.evaluate(r, r.header.report_id))
        .collect()
}
