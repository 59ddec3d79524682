//! `bench-loadgen`: the load generator of the benchmark harness (see `bench/README.md`).
//!
//! - `saturate`: closed loop over N keep-alive connections; throughput and latency at saturation.
//! - `rate`: open loop at a fixed rate; latency measured from each request's intended send time.
//! - `ttfb`: like `rate`, for streaming responses; time to the first body byte and to the end.
//! - `rss`: prints the `VmRSS` of a process (used for the idle reading).
//! - `report`: renders the JSON results of a run directory as the markdown table.
//!
//! With `--vary MARKER`, every request's body is new (see [`vary`]): fresh prompts.
//!
//! Each mode can measure several targets in one run: they take turns in short blocks, so noise on
//! the machine falls on all of them alike. With `--watch-pid`, the run also reports the CPU time that process spent per response and its
//! peak RSS, both over exactly the measured window.

mod conn;
mod modes;
mod procmon;
mod report;
mod stats;
mod vary;

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};

use crate::{
    conn::Target,
    modes::{Outcome, Phases},
    procmon::Watch,
    stats::{us, RunResult},
    vary::Counter,
};

#[derive(Parser)]
#[command(about = "Load generator for the liter-llm benchmark")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Closed loop: as many requests as N connections can carry; several --url take turns.
    Saturate {
        #[command(flatten)]
        common: Common,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
    },
    /// Open loop at a fixed rate; several --url take turns.
    Rate {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        open: OpenLoop,
    },
    /// Like `rate`, for streaming requests: time to first byte and to the end.
    Ttfb {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        open: OpenLoop,
    },
    /// Print `{"rss_kb": N}` for a process.
    Rss {
        #[arg(long)]
        pid: u32,
    },
    /// Render the results in a run directory as markdown.
    Report(report::ReportArgs),
}

#[derive(Args)]
struct Common {
    /// Target URL, `http://host:port/path`; repeatable: the URLs then take turns (--round-secs).
    #[arg(long, required = true)]
    url: Vec<String>,
    /// Length of the measured window (per target).
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Load sent before the measured window and not counted (per target).
    #[arg(long, default_value_t = 0.0)]
    warmup_secs: f64,
    /// Extra request header, `Name: value`; repeatable.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Request body (sent as `POST`, `Content-Type: application/json`); without it, `GET`.
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// Replace every occurrence of this marker in the body, request by request, with a phrase of
    /// six words that no other request carries (fresh prompts: no cache of earlier texts helps).
    #[arg(long, requires = "body_file")]
    vary: Option<String>,
    /// With --vary: the number of the first phrase (default: the clock in microseconds, so that
    /// a later run never repeats an earlier run's phrases).
    #[arg(long, requires = "vary")]
    vary_start: Option<u64>,
    /// Per-request timeout.
    #[arg(long, default_value_t = 30.0)]
    timeout_secs: f64,
    /// Process whose CPU time and RSS to measure over the window; one per --url when given
    /// (0: none for that URL).
    #[arg(long)]
    watch_pid: Vec<u32>,
    /// The core the watched processes are pinned to: also report how much else ran there.
    #[arg(long)]
    watch_core: Option<usize>,
    /// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    /// Also write the JSON result to this file; one per --url when given.
    #[arg(long)]
    out: Vec<PathBuf>,
    /// With several --url: after one warm-up block per URL, the measured time is cut into blocks
    /// of this length that go to the URLs in turn, so that noise on the machine falls on all of
    /// them alike (0: one block each).
    #[arg(long, default_value_t = 1.0)]
    round_secs: f64,
}

#[derive(Args)]
struct OpenLoop {
    /// Requests per second.
    #[arg(long, default_value_t = 1000.0)]
    rps: f64,
}

impl Common {
    fn check(&self) -> anyhow::Result<()> {
        let n = self.url.len();
        if !self.watch_pid.is_empty() && self.watch_pid.len() != n {
            bail!("give --watch-pid once per --url (0 for none), or not at all");
        }
        if !self.out.is_empty() && self.out.len() != n {
            bail!("give --out once per --url, or not at all");
        }
        Ok(())
    }

    fn targets(&self) -> anyhow::Result<Vec<Arc<Target>>> {
        let body = match &self.body_file {
            Some(path) => Some(Bytes::from(
                std::fs::read(path).with_context(|| format!("read {}", path.display()))?,
            )),
            None => None,
        };
        let timeout = Duration::from_secs_f64(self.timeout_secs);
        let counter = Counter::new(self.vary_start);
        self.url
            .iter()
            .map(|url| {
                let target = Target::new(url, &self.headers, body.clone(), timeout)?;
                Ok(Arc::new(match &self.vary {
                    Some(marker) => target.vary(marker, counter.clone())?,
                    None => target,
                }))
            })
            .collect()
    }

    fn phases(&self) -> Phases {
        Phases {
            warmup: Duration::from_secs_f64(self.warmup_secs),
            duration: Duration::from_secs_f64(self.duration_secs),
        }
    }

    /// The watch for the i-th URL.
    fn watch(&self, i: usize) -> Option<Watch> {
        let pid = *self.watch_pid.get(i)?;
        (pid != 0).then_some(Watch {
            pid,
            clk_tck: self.clk_tck,
            core: self.watch_core,
        })
    }

    fn emit(&self, results: &[RunResult]) -> anyhow::Result<()> {
        for (i, result) in results.iter().enumerate() {
            let json = serde_json::to_string(result)?;
            println!("{json}");
            if let Some(out) = self.out.get(i) {
                std::fs::write(out, format!("{json}\n"))
                    .with_context(|| format!("write {}", out.display()))?;
            }
        }
        Ok(())
    }

    /// The targets with their watches.
    fn watched(&self) -> anyhow::Result<Vec<(Arc<Target>, Option<Watch>)>> {
        self.check()?;
        let targets = self.targets()?.into_iter().enumerate();
        Ok(targets.map(|(i, t)| (t, self.watch(i))).collect())
    }

    fn round(&self) -> Duration {
        Duration::from_secs_f64(self.round_secs.max(0.0))
    }

    async fn open_loop(&self, open: &OpenLoop) -> anyhow::Result<Vec<Outcome>> {
        modes::open_loop(self.watched()?, open.rps, self.phases(), self.round()).await
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Rss { pid } => {
            println!("{{\"rss_kb\":{}}}", procmon::rss_kb(pid)?);
            Ok(())
        }
        Cmd::Report(args) => report::run(&args),
        Cmd::Saturate {
            common,
            connections,
        } => {
            let outs = runtime()?.block_on(modes::saturate(
                common.watched()?,
                connections.max(1),
                common.phases(),
                common.round(),
            ))?;
            let results: Vec<_> = outs
                .iter()
                .map(|out| {
                    let mut r = result("saturate", out);
                    r.p50_us = Some(us(&out.stats.total, 0.5));
                    r.p99_us = Some(us(&out.stats.total, 0.99));
                    r
                })
                .collect();
            common.emit(&results)
        }
        Cmd::Rate { common, open } => {
            let outs = runtime()?.block_on(common.open_loop(&open))?;
            let results: Vec<_> = outs
                .iter()
                .map(|out| {
                    let mut r = result("rate", out);
                    r.p50_us = Some(us(&out.stats.total, 0.5));
                    r.p90_us = Some(us(&out.stats.total, 0.9));
                    r.p99_us = Some(us(&out.stats.total, 0.99));
                    r.max_us = Some(us(&out.stats.total, 1.0));
                    r
                })
                .collect();
            common.emit(&results)
        }
        Cmd::Ttfb { common, open } => {
            let outs = runtime()?.block_on(common.open_loop(&open))?;
            let results: Vec<_> = outs
                .iter()
                .map(|out| {
                    let mut r = result("ttfb", out);
                    r.ttfb_p50_us = Some(us(&out.stats.ttfb, 0.5));
                    r.ttfb_p99_us = Some(us(&out.stats.ttfb, 0.99));
                    r.p50_us = Some(us(&out.stats.total, 0.5));
                    r.p99_us = Some(us(&out.stats.total, 0.99));
                    r
                })
                .collect();
            common.emit(&results)
        }
    }
}

fn result(mode: &str, out: &Outcome) -> RunResult {
    let mut r = RunResult::new(mode, &out.stats, out.window, out.proc);
    if !out.stats.lag.is_empty() {
        r.send_lag_p50_us = Some(us(&out.stats.lag, 0.5));
        r.send_lag_p99_us = Some(us(&out.stats.lag, 0.99));
    }
    r
}

/// One thread: the load generator shares its core with the mock upstream and should not spread.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
