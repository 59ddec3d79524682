//! Reads the process under test from `/proc`: CPU time (utime + stime from `/proc/PID/stat`)
//! and resident memory (`VmRSS` from `/proc/PID/status`).
//!
//! A monitor thread takes a CPU reading at the start and at the end of each measured block and
//! samples RSS in between, so its numbers cover exactly the time the load generator counts.

use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};

/// How often RSS is sampled during the measured window.
const RSS_EVERY: Duration = Duration::from_millis(50);

/// utime + stime of the whole process (all threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat: is the watched process still running?"))?;
    parse_stat_cpu(&stat).with_context(|| format!("parse /proc/{pid}/stat"))
}

/// utime (field 14) + stime (field 15) of a `/proc/PID/stat` line.
fn parse_stat_cpu(stat: &str) -> anyhow::Result<u64> {
    // The command name may contain spaces and parentheses: the fields we want follow the last ')'.
    let (_, rest) = stat.rsplit_once(')').ok_or_else(|| anyhow!("no ')'"))?;
    // Index 0 after ')' is field 3 (state).
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let mut next = || -> anyhow::Result<u64> {
        Ok(fields
            .next()
            .ok_or_else(|| anyhow!("too few fields"))?
            .parse()?)
    };
    Ok(next()? + next()?)
}

/// Ticks core `core` spent busy (user, nice, system, irq, softirq, steal) from `/proc/stat`.
pub fn core_busy_ticks(core: usize) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
    parse_core_busy(&stat, core)
}

fn parse_core_busy(stat: &str, core: usize) -> anyhow::Result<u64> {
    let prefix = format!("cpu{core} ");
    let line = stat
        .lines()
        .find(|l| l.starts_with(&prefix))
        .ok_or_else(|| anyhow!("no cpu{core} in /proc/stat"))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("parse /proc/stat")?;
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let [user, nice, system, _idle, _iowait, irq, softirq, steal, ..] = v[..] else {
        bail!("short cpu{core} line in /proc/stat");
    };
    Ok(user + nice + system + irq + softirq + steal)
}

/// `VmRSS` in KiB.
pub fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))?
        .parse()
        .context("parse VmRSS")
}

/// What the process under test used during the measured window.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ProcStats {
    pub pid: u32,
    /// CPU seconds (user + system) spent in the measured blocks.
    pub cpu_secs: f64,
    /// `cpu_secs` over the blocks' wall time: 1.0 means one core fully busy.
    pub cpu_util: f64,
    /// Highest `VmRSS` sampled during the blocks, in KiB.
    pub rss_max_kb: u64,
    /// With a watched core: the share of that core's time during the blocks that went to
    /// anything but this process (other programs, interrupts, the hypervisor's steal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_on_core: Option<f64>,
}

/// Which process to watch, the kernel's clock ticks per second, and optionally the core the
/// process is pinned to (to tell how much else ran there).
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    pub pid: u32,
    pub clk_tck: u64,
    pub core: Option<usize>,
}

/// A stretch of the measured window that belongs to target number `target`.
#[derive(Debug, Clone, Copy)]
pub struct Block {
    pub target: usize,
    pub start: Instant,
    pub end: Instant,
}

/// Sums for one watched process over its blocks.
#[derive(Default)]
struct Sums {
    ticks: u64,
    core_ticks: u64,
    wall: Duration,
    rss_max_kb: u64,
}

pub struct Monitor(thread::JoinHandle<anyhow::Result<Vec<Option<ProcStats>>>>);

impl Monitor {
    /// Watches `watches[b.target]`, when there is one, during each block `b`, in order. A CPU
    /// reading is taken at both ends of each block and RSS is sampled in between.
    pub fn spawn(watches: Vec<Option<Watch>>, blocks: Vec<Block>) -> Self {
        Self(thread::spawn(move || {
            let mut sums: Vec<Sums> = watches.iter().map(|_| Sums::default()).collect();
            for b in blocks {
                let (Some(Some(w)), Some(sum)) = (watches.get(b.target), sums.get_mut(b.target))
                else {
                    continue;
                };
                sleep_until(b.start);
                let t0 = Instant::now();
                let c0 = cpu_ticks(w.pid)?;
                let k0 = w.core.map(core_busy_ticks).transpose()?;
                sum.rss_max_kb = sum.rss_max_kb.max(rss_kb(w.pid)?);
                while Instant::now() < b.end {
                    sleep_until((Instant::now() + RSS_EVERY).min(b.end));
                    sum.rss_max_kb = sum.rss_max_kb.max(rss_kb(w.pid)?);
                }
                sum.ticks += cpu_ticks(w.pid)?.saturating_sub(c0);
                if let (Some(core), Some(k0)) = (w.core, k0) {
                    sum.core_ticks += core_busy_ticks(core)?.saturating_sub(k0);
                }
                sum.wall += t0.elapsed();
            }
            Ok(watches
                .iter()
                .zip(sums)
                .map(|(w, sum)| {
                    let w = (*w)?;
                    let wall = sum.wall.as_secs_f64().max(1e-9);
                    let secs = |ticks: u64| ticks as f64 / w.clk_tck as f64;
                    let cpu_secs = secs(sum.ticks);
                    let other = secs(sum.core_ticks.saturating_sub(sum.ticks)) / wall;
                    Some(ProcStats {
                        pid: w.pid,
                        cpu_secs,
                        cpu_util: cpu_secs / wall,
                        rss_max_kb: sum.rss_max_kb,
                        other_on_core: w.core.map(|_| other.min(1.0)),
                    })
                })
                .collect())
        }))
    }

    pub fn join(self) -> anyhow::Result<Vec<Option<ProcStats>>> {
        self.0
            .join()
            .map_err(|_| anyhow!("process monitor thread panicked"))?
    }
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        thread::sleep(t - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_follow_the_last_paren() {
        let line =
            "4242 (we (i) rd) S 1 4242 4242 0 -1 4194560 900 0 0 0 170 30 0 0 20 0 3 0 1 1 1";
        assert_eq!(parse_stat_cpu(line).unwrap(), 200);
        assert!(parse_stat_cpu("4242 (short) S 1").is_err());
    }

    #[test]
    fn core_busy_leaves_out_idle_and_iowait() {
        let stat =
            "cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 1 2 3 1000 500 4 5 6 0 0\ncpu1 7 0 0 0 0 0 0 0 0 0\n";
        assert_eq!(parse_core_busy(stat, 0).unwrap(), 21);
        assert_eq!(parse_core_busy(stat, 1).unwrap(), 7);
        assert!(parse_core_busy(stat, 2).is_err());
        core_busy_ticks(0).unwrap();
    }

    #[test]
    fn reads_our_own_process() {
        let pid = std::process::id();
        assert!(rss_kb(pid).unwrap() > 0);
        cpu_ticks(pid).unwrap();
    }
}
