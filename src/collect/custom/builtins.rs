//! Built-in custom metrics read from procfs under the collectors' root (live `/` or a fixture
//! tree): CPU and memory use, process count, loaded kernel modules, the kernel taint mask.

use std::path::Path;
use std::time::Duration;

use super::{CustomError, CustomValue, MetricType, ParseError};

/// Time between the two /proc/stat readings of a `cpu_usage` that has no previous sample
/// (the first cycle of the daemon, a single-sample `dump`).
pub const FIRST_CPU_WINDOW: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// % of all CPUs busy since the previous sample (/proc/stat).
    CpuUsage,
    /// % of memory in use: (MemTotal - MemAvailable) / MemTotal (/proc/meminfo).
    MemoryUsedPercent,
    /// Number of processes (numeric entries of /proc).
    ProcessCount,
    /// Names of the loaded kernel modules, sorted (/proc/modules): a rootkit often shows up here.
    KernelModules,
    /// The kernel taint mask (/proc/sys/kernel/tainted): non-zero after an unsigned,
    /// out-of-tree or forced module load, a kernel oops, etc.
    KernelTainted,
}

impl Builtin {
    pub const ALL: [Builtin; 5] = [
        Builtin::CpuUsage,
        Builtin::MemoryUsedPercent,
        Builtin::ProcessCount,
        Builtin::KernelModules,
        Builtin::KernelTainted,
    ];

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::CpuUsage => "cpu_usage",
            Builtin::MemoryUsedPercent => "memory_used_percent",
            Builtin::ProcessCount => "process_count",
            Builtin::KernelModules => "kernel_modules",
            Builtin::KernelTainted => "kernel_tainted",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The only type the built-in produces.
    pub fn metric_type(self) -> MetricType {
        match self {
            Builtin::KernelModules => MetricType::StringList,
            _ => MetricType::Number,
        }
    }
}

/// Aggregate CPU time from the `cpu` line of /proc/stat, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq + steal.
    pub busy: u64,
    /// busy + idle + iowait.
    pub total: u64,
}

/// What the built-ins keep between samples; owned by the caller (the daemon keeps one per
/// configuration, `dump` one per run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CustomState {
    pub cpu: Option<CpuTimes>,
}

/// Reads built-in `b` under `root`.
pub fn read(b: Builtin, root: &Path, state: &mut CustomState) -> Result<CustomValue, CustomError> {
    Ok(match b {
        Builtin::CpuUsage => CustomValue::Number(cpu_usage(root, state)?),
        Builtin::MemoryUsedPercent => CustomValue::Number(memory_used_percent(root)?),
        Builtin::ProcessCount => CustomValue::Number(process_count(root)? as f64),
        Builtin::KernelModules => CustomValue::StringList(kernel_modules(root)?),
        Builtin::KernelTainted => {
            let path = root.join("proc/sys/kernel/tainted");
            let text = read_text(root, "proc/sys/kernel/tainted")?;
            let mask: u64 = text.trim().parse().map_err(|_| bad(&path, &text))?;
            CustomValue::Number(mask as f64)
        }
    })
}

fn read_text(root: &Path, rel: &str) -> Result<String, CustomError> {
    let path = root.join(rel);
    std::fs::read_to_string(&path).map_err(|source| CustomError::Read { path, source })
}

fn bad(path: &Path, text: &str) -> CustomError {
    let first = text.lines().next().unwrap_or("").to_string();
    CustomError::Parse(ParseError::NotNumber(format!(
        "{}: {first}",
        path.display()
    )))
}

/// Rounds to two decimals: a percentage never needs more, and stays within 15 digits.
fn percent(part: f64, whole: f64) -> f64 {
    (part / whole * 10_000.0).round() / 100.0
}

/// The `cpu` line of root/proc/stat.
pub fn cpu_times(root: &Path) -> Result<CpuTimes, CustomError> {
    let text = read_text(root, "proc/stat")?;
    let path = root.join("proc/stat");
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| bad(&path, &text))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad(&path, line))?;
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    let [user, nice, system, idle, iowait, irq, softirq, steal, ..] = fields[..] else {
        return Err(bad(&path, line));
    };
    let busy = user + nice + system + irq + softirq + steal;
    Ok(CpuTimes {
        busy,
        total: busy + idle + iowait,
    })
}

/// Busy share of the CPU time that passed since `state.cpu`; without a previous reading, a
/// second one is taken `FIRST_CPU_WINDOW` later. `state` always keeps the newest reading.
fn cpu_usage(root: &Path, state: &mut CustomState) -> Result<f64, CustomError> {
    let before = match state.cpu {
        Some(t) => t,
        None => {
            let first = cpu_times(root)?;
            std::thread::sleep(FIRST_CPU_WINDOW);
            first
        }
    };
    let now = cpu_times(root)?;
    state.cpu = Some(now);
    let (busy, total) = (
        now.busy.saturating_sub(before.busy),
        now.total.saturating_sub(before.total),
    );
    if total == 0 {
        // Counters went back (a reboot under a kept state) or no tick passed.
        return Err(CustomError::Parse(ParseError::Empty(
            "CPU time passed since the previous sample",
        )));
    }
    Ok(percent(busy as f64, total as f64))
}

fn memory_used_percent(root: &Path) -> Result<f64, CustomError> {
    let text = read_text(root, "proc/meminfo")?;
    let path = root.join("proc/meminfo");
    let field = |name: &str| -> Result<u64, CustomError> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| bad(&path, &format!("no {name}")))
    };
    let (total, available) = (field("MemTotal")?, field("MemAvailable")?);
    if total == 0 {
        return Err(bad(&path, "MemTotal: 0"));
    }
    Ok(percent(
        total.saturating_sub(available) as f64,
        total as f64,
    ))
}

/// Numeric entries of root/proc. When /proc/1 is hidden (hidepid, systemd's
/// `ProtectProc=invisible`) only the agent's own processes would be counted: an error then,
/// never a misleading number.
fn process_count(root: &Path) -> Result<usize, CustomError> {
    let path = root.join("proc");
    if !path.join("1").exists() {
        return Err(CustomError::Read {
            path: path.join("1"),
            source: std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "other processes are hidden (hidepid / ProtectProc=invisible): the count would be the agent's own only; see README",
            ),
        });
    }
    let entries = std::fs::read_dir(&path).map_err(|source| CustomError::Read {
        path: path.clone(),
        source,
    })?;
    Ok(entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .count())
}

/// First field of each line of /proc/modules, sorted and cleaned as any string-list item.
fn kernel_modules(root: &Path) -> Result<Vec<String>, CustomError> {
    let text = read_text(root, "proc/modules")?;
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(super::parse::clean)
        .collect();
    names.sort_unstable();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_types() {
        for b in Builtin::ALL {
            assert_eq!(Builtin::from_name(b.name()), Some(b));
        }
        assert_eq!(Builtin::KernelModules.metric_type(), MetricType::StringList);
        assert_eq!(Builtin::CpuUsage.metric_type(), MetricType::Number);
        assert_eq!(Builtin::from_name("cpu"), None);
    }

    #[test]
    fn percent_rounds_to_two_decimals() {
        assert_eq!(percent(1.0, 3.0), 33.33);
        assert_eq!(percent(0.0, 3.0), 0.0);
    }
}
