//! Randomness for the daemon: violation ids (detect-rules §6.2) from the kernel, and the
//! reconnect jitter seed. The engine and the backoff take them as parameters.

use std::time::{SystemTime, UNIX_EPOCH};

/// 128 random bits for a violation id (detect-rules §6.2): getrandom(2) without blocking,
/// else /dev/urandom, else (never seen on Linux ≥ 3.17) the clock mixed with a counter.
pub(super) fn bits() -> u128 {
    let mut buf = [0u8; 16];
    let mut filled = 0usize;
    for _ in 0..4 {
        // SAFETY: getrandom(2) writes at most `16 - filled` bytes into `buf[filled..]`.
        let n = unsafe {
            libc::getrandom(
                buf[filled..].as_mut_ptr().cast(),
                buf.len() - filled,
                libc::GRND_NONBLOCK,
            )
        };
        if n > 0 {
            filled += n as usize;
            if filled == buf.len() {
                return u128::from_ne_bytes(buf);
            }
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
    }
    use std::io::Read;
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
    {
        return u128::from_ne_bytes(buf);
    }
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!("no random source; violation id derived from the clock");
    let a = splitmix(seed() ^ n);
    (u128::from(a) << 64) | u128::from(splitmix(a))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Jitter seed: time and pid, so agents that boot together do not retry in step.
pub(super) fn seed() -> u64 {
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
    fn random_ids_differ() {
        let a = bits();
        let b = bits();
        assert_ne!(a, b);
        assert_ne!(splitmix(1), splitmix(2));
    }
}
