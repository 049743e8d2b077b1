//! Randomness for both programs: violation ids (detect-rules §6.2) from the kernel, and the
//! reconnect jitter seed. The detect engine and the backoff take them as parameters.

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of 128-bit violation ids (the detect engine's `IdSource`).
pub type Ids = Box<dyn FnMut() -> u128 + Send>;

/// 128 bits from the kernel for each id. Where the kernel has none to give (never seen on
/// Linux ≥ 3.17), the sequence `seeded` makes from the clock and the pid, with one warning.
pub fn ids(seeded: fn(u64) -> Ids) -> Ids {
    let mut fallback: Option<Ids> = None;
    Box::new(move || {
        kernel_bits().unwrap_or_else(|| {
            let next = fallback.get_or_insert_with(|| {
                tracing::warn!("no random source in the kernel; violation ids follow a sequence seeded from the clock");
                seeded(seed())
            });
            next()
        })
    })
}

/// 16 bytes from the getrandom(2) system call without blocking (early boot), else from
/// /dev/urandom.
fn kernel_bits() -> Option<u128> {
    let mut buf = [0u8; 16];
    let mut filled = 0usize;
    for _ in 0..4 {
        // The raw system call, not glibc's wrapper: that one only exists from glibc 2.25 on,
        // and the release builds link against glibc 2.17 (issue #10).
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

    fn counter(seed: u64) -> Ids {
        let mut n = u128::from(seed);
        Box::new(move || {
            n += 1;
            n
        })
    }

    #[test]
    fn ids_differ() {
        let mut ids = ids(counter);
        let (a, b) = (ids(), ids());
        assert_ne!(a, b);
        assert!(kernel_bits().is_some());
    }
}
