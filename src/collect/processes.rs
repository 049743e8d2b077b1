//! Owns socket-inode → process attribution from root/proc/[pid]/fd (for `dump` only).
//! Does not sit on the report path and never fails: unreadable processes are skipped.

use std::collections::HashMap;
use std::path::Path;

/// The process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub name: String,
}

/// Maps socket inode → owning process by scanning root/proc/[pid]/fd for `socket:[INODE]`
/// links. When several processes share a socket the lowest pid wins. Processes that vanish
/// or deny access are skipped silently (callers show "?").
pub fn owners(root: &Path) -> HashMap<u64, Owner> {
    let mut map: HashMap<u64, Owner> = HashMap::new();
    let Ok(entries) = std::fs::read_dir(root.join("proc")) else {
        return map;
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let dir = root.join("proc").join(pid.to_string());
        let Ok(fds) = std::fs::read_dir(dir.join("fd")) else {
            continue;
        };
        let mut name: Option<String> = None;
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = socket_inode(&target.to_string_lossy()) else {
                continue;
            };
            if map.contains_key(&inode) {
                continue;
            }
            let name = name.get_or_insert_with(|| {
                std::fs::read(dir.join("comm"))
                    .map(|b| super::lossless_text(b.strip_suffix(b"\n").unwrap_or(&b)))
                    .unwrap_or_else(|_| "?".to_string())
            });
            map.insert(
                inode,
                Owner {
                    pid,
                    name: name.clone(),
                },
            );
        }
    }
    map
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_socket_links() {
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        assert_eq!(socket_inode("pipe:[12345]"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
    }

    #[test]
    fn finds_own_socket() {
        use std::os::unix::fs::MetadataExt;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&l);
        let inode = std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .unwrap()
            .ino();
        let owners = owners(Path::new("/"));
        let me = owners.get(&inode).expect("own listener attributed");
        assert_eq!(me.pid, std::process::id());
    }
}
