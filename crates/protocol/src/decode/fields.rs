//! The scalar fields of a report as shapes of the typed walk: report_id, version, counts,
//! ports, addresses and interface names, each refused in the report's own terms.

use std::net::SocketAddr;

use super::ctx::{Ctx, Stop};
use super::walk::{Got, Scalar, Shape};
use super::{invalid, unmap};
use crate::model::MAX_DECODED_REPORT_ID;

shape!(ReportId, "a positive integer");
shape!(Version, "a string");
shape!(Text, "a string");
shape!(Count, "an integer >= 0");
shape!(PortNumber, "a port 1-65535");
shape!(LocalPort, "a port 0-65535");
shape!(RemoteAddr, "a string");

/// The major number of a `Major.Minor` version (the whole text when it has no dot).
fn major(version: &str) -> Option<u64> {
    let major = version.split('.').next()?;
    if major.is_empty() || !major.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    major.parse().ok()
}

impl_shape!(ReportId, u64, {
    fn scalar(self, s: Scalar) -> Result<u64, Stop> {
        match s.integer() {
            Some(id @ 1..=MAX_DECODED_REPORT_ID) => Ok(id),
            Some(id) if id > MAX_DECODED_REPORT_ID => {
                let m = format!(
                    "{id} is above {MAX_DECODED_REPORT_ID}, the largest report_id accepted"
                );
                Err(self.0.stop(invalid(&self.0.path(), &m)))
            }
            _ => Err(self.refuse(Got::Scalar(s))),
        }
    }
});

impl_shape!(Version, (), {
    fn scalar(self, s: Scalar) -> Result<(), Stop> {
        match s {
            // A major version adds or removes metrics (protocol doc §1.3): only 1 is known.
            Scalar::Str(v) if major(v) == Some(1) => Ok(()),
            Scalar::Str(v) => {
                let m = format!("{v:?} is not version 1.x, the only one understood");
                Err(self.0.stop(invalid(&self.0.path(), &m)))
            }
            s => Err(self.refuse(Got::Scalar(s))),
        }
    }
});

impl_shape!(Text, String, {
    fn scalar(self, s: Scalar) -> Result<String, Stop> {
        match s {
            Scalar::Str(v) => Ok(v.to_string()),
            s => Err(self.refuse(Got::Scalar(s))),
        }
    }
});

impl_shape!(Count, u64, {
    fn scalar(self, s: Scalar) -> Result<u64, Stop> {
        s.integer().ok_or_else(|| self.refuse(Got::Scalar(s)))
    }
});

impl_shape!(PortNumber, u16, {
    fn scalar(self, s: Scalar) -> Result<u16, Stop> {
        match s.integer().and_then(|n| u16::try_from(n).ok()) {
            Some(n) if n > 0 => Ok(n),
            _ => Err(self.refuse(Got::Scalar(s))),
        }
    }
});

impl_shape!(LocalPort, u16, {
    fn scalar(self, s: Scalar) -> Result<u16, Stop> {
        s.integer()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| self.refuse(Got::Scalar(s)))
    }
});

impl_shape!(RemoteAddr, SocketAddr, {
    fn scalar(self, s: Scalar) -> Result<SocketAddr, Stop> {
        match s {
            Scalar::Str(v) => v.parse::<SocketAddr>().map(unmap).map_err(|_| {
                let m = format!("{v:?} is not ip:port or [ipv6]:port");
                self.0.stop(invalid(&self.0.path(), &m))
            }),
            s => Err(self.refuse(Got::Scalar(s))),
        }
    }
});
