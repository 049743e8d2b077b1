//! Randomness for the daemon: violation ids (detect-rules §6.2) from the kernel, and the
//! reconnect jitter seed. The engine and the backoff take them as parameters.

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::detect::engine::{IdSource, seeded_ids};

/// The violation-id source of the daemon: 128 bits from the kernel for each id. Where the
/// kernel has none to give (never seen on Linux ≥ 3.17), a sequence seeded from the clock and
/// the pid, with one warning.
pub fn ids() -> IdSource {
    let mut fallback: Option<IdSource> = None;
    Box::new(move || {
        kernel_bits().unwrap_or_else(|| {
            let next = fallback.get_or_insert_with(|| {
                tracing::warn!("no random source in the kernel; violation ids follow a sequence seeded from the clock");
                seeded_ids(seed())
            });
            next()
        })
    })
}

/// 16 bytes from getrandom(2) without blocking (early boot), else from /dev/urandom.
/// Through syscall(2), not glibc's getrandom() wrapper: that one is GLIBC_2.25, above the
/// 2.17 floor the release binaries are linked against (scripts/check-glibc); a kernel
/// without the call (< 3.17) answers ENOSYS and /dev/urandom is read instead.
fn kernel_bits() -> Option<u128> {
    let mut buf = [0u8; 16];
    let mut filled = 0usize;
    for _ in 0..4 {
        // SAFETY: getrandom(2) writes at most `16 - filled` bytes into `buf[filled..]`.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getrandom,
                buf[filled..].as_mut_ptr(),
                buf.len() - filled,
                libc::GRND_NONBLOCK,
            )
        };
        if n > 0 {
            filled += n as usize;
            if filled == buf.len() {
                return Some(u128::from_ne_bytes(buf));
            }
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
    }
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .ok()
        .map(|()| u128::from_ne_bytes(buf))
}

/// Jitter seed: time and pid, so agents that boot together do not retry in step.
pub fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ() {
        let mut ids = ids();
        let (a, b) = (ids(), ids());
        assert_ne!(a, b);
        assert!(kernel_bits().is_some());
    }
}
