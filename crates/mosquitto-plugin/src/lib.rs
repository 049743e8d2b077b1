//! detect-fleet's mosquitto plugin: what Debian 12's mosquitto 2.0 saw of each client (connects,
//! disconnects, traffic, denials), published in numbered batches on `$detect/broker/events`.

// Test binaries leave out `plugin` (it calls into the broker), so what only it uses is unused there.
#![cfg_attr(test, allow(dead_code, unused_imports))]

mod ffi;
mod options;
mod outbox;
mod tracker;
mod traffic;

// The exported functions call into the broker, which test binaries do not have.
#[cfg(not(test))]
mod plugin;
