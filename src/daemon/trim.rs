//! Gives start-up memory back: after the first report cycle on each new connection, the agent's
//! own read-only file mappings (code and constants) are paged out, so only what the cycles use
//! comes back (start-up, TLS set-up and reconnects touch much code that the cycles do not).
//!
//! Why: the kernel maps file pages in 64 KiB blocks around each fault (fault-around) and reads
//! code ahead in blocks too, so once start-up (config, CLI, TLS set-up, profile loading) has
//! run, nearly the whole binary is resident although a cycle uses a part of it.
//! `MADV_RANDOM` stops the read-ahead of the pages that come back, `MADV_PAGEOUT` (Linux 5.4)
//! reclaims the clean pages now. Both are hints: on an older kernel, or under a seccomp filter
//! that refuses them, nothing changes and the agent runs as before. How much stays out depends
//! on the page cache: a large folio (kernel 6.x read-ahead) comes back whole when one of its
//! pages is used. Here (Linux 6.18, ext4) RssFile goes 2 308 -> 660 KiB at once, then settles
//! at ~1 830 KiB with the binary read from disk, ~980 KiB with it cached by the linker.

/// Pages out `page_out_own_code`, logged at debug level either way. The caller calls it once per
/// connection, after its first cycle (start-up or the reconnect, TLS set-up included, is over):
/// at most once per backoff-bounded reconnect.
pub fn give_back() {
    match page_out_own_code() {
        Ok(bytes) => tracing::debug!(bytes, "start-up code pages given back"),
        Err(e) => tracing::debug!(error = %e, "start-up code pages kept"),
    }
}

/// Pages out the read-only mappings of `/proc/self/exe`. Returns the bytes advised, or why
/// nothing was (for one debug line; this never fails the agent).
pub fn page_out_own_code() -> Result<usize, String> {
    let exe = std::fs::read_link("/proc/self/exe").map_err(|e| format!("/proc/self/exe: {e}"))?;
    let maps =
        std::fs::read_to_string("/proc/self/maps").map_err(|e| format!("/proc/self/maps: {e}"))?;
    let exe = exe.to_string_lossy();
    let mut advised = 0;
    for (start, end) in read_only_ranges(&maps, &exe) {
        let len = end - start;
        // SAFETY: [start, end) is a whole mapping of this process's own executable file,
        // read-only (no 'w'); both advices only drop clean pages, which the kernel re-reads
        // from the file on the next access. No Rust object is invalidated.
        let r = unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_RANDOM);
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT)
        };
        if r != 0 {
            return Err(format!("madvise: {}", std::io::Error::last_os_error()));
        }
        advised += len;
    }
    Ok(advised)
}

/// `(start, end)` of each mapping of `exe` without write permission, from /proc/self/maps
/// lines such as `7f88..-7f88.. r-xp 00001000 fd:01 1234   /usr/bin/detect-agent`.
fn read_only_ranges(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut cols = line.splitn(6, ' ');
            let range = cols.next()?;
            let perms = cols.next()?;
            let path = cols.nth(3)?.trim_start();
            if path != exe || perms.as_bytes().get(1) == Some(&b'w') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let start = usize::from_str_radix(a, 16).ok()?;
            let end = usize::from_str_radix(b, 16).ok()?;
            (end > start).then_some((start, end))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_executables_read_only_mappings_are_picked() {
        let maps = "\
55d0-55d2 rw-p 00000000 00:00 0          [heap]
7f00-7f10 r--p 00000000 fd:01 42         /usr/bin/detect-agent
7f10-7f40 r-xp 00010000 fd:01 42         /usr/bin/detect-agent
7f40-7f48 rw-p 00040000 fd:01 42         /usr/bin/detect-agent
7f50-7f60 r-xp 00000000 fd:01 43         /usr/lib/libc.so
7f60-7f70 r--p 00000000 fd:01 42         /usr/bin/detect-agent (deleted)
garbage line
";
        assert_eq!(
            read_only_ranges(maps, "/usr/bin/detect-agent"),
            [(0x7f00, 0x7f10), (0x7f10, 0x7f40)]
        );
    }

    #[test]
    fn paging_out_the_test_binarys_own_code_keeps_it_running() {
        let advised = page_out_own_code().unwrap();
        assert!(advised > 0);
        // The code that runs next comes back from the file, page by page.
        let mut v: Vec<String> = (0..100).rev().map(|i| format!("{i:03}")).collect();
        v.sort();
        assert_eq!((v[0].as_str(), v[99].as_str()), ("000", "099"));
        assert!(page_out_own_code().unwrap() >= advised);
    }
}
