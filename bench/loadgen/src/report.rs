//! Renders a run directory (the JSON files `bench/run.sh` collects) as the markdown report:
//! one table for non-streaming requests, one for streaming, and the goals with PASS/MISS.
//!
//! Files read from `--dir`, each optional (a missing one shows as `–`):
//! `{direct,floor,gateway}-{sat,rate,sat-stream,ttfb}.json` (outputs of the load modes),
//! `{floor,gateway}-idle.json` (`{"rss_kb": N}`), and `notes.txt` (lines copied under Notes).

use std::{fmt::Write as _, path::PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

use crate::stats::RunResult;

#[derive(Args)]
pub struct ReportArgs {
    /// Directory with the run's JSON files.
    #[arg(long)]
    dir: PathBuf,
    /// Report title.
    #[arg(long, default_value = "liter-llm benchmark")]
    title: String,
    /// Header line `Label: value`; repeatable, printed in order.
    #[arg(long)]
    meta: Vec<String>,
    /// The fixed rate the `rate` and `ttfb` runs used (for labels).
    #[arg(long, default_value_t = 1000.0)]
    rps: f64,
    /// Write the markdown here as well as to stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Idle {
    rss_kb: u64,
}

/// Everything measured for one path (direct, floor or gateway).
struct Path {
    label: &'static str,
    sat: Option<RunResult>,
    rate: Option<RunResult>,
    sat_stream: Option<RunResult>,
    ttfb: Option<RunResult>,
    idle: Option<Idle>,
}

const CPU_GOAL: f64 = 1.5;
const ADDED_P50_GOAL_US: f64 = 100.0;
const IDLE_RSS_GOAL_MB: f64 = 20.0;

pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let md = render(args, &load(args)?)?;
    print!("{md}");
    if let Some(out) = &args.out {
        std::fs::write(out, &md).with_context(|| format!("write {}", out.display()))?;
    }
    Ok(())
}

fn load(args: &ReportArgs) -> anyhow::Result<Vec<Path>> {
    let mut paths = Vec::new();
    for (key, label) in [
        ("direct", "mock direct"),
        ("floor", "floor (bench-floor)"),
        ("gateway", "gateway (liter-llm)"),
    ] {
        paths.push(Path {
            label,
            sat: read(args, &format!("{key}-sat.json"))?,
            rate: read(args, &format!("{key}-rate.json"))?,
            sat_stream: read(args, &format!("{key}-sat-stream.json"))?,
            ttfb: read(args, &format!("{key}-ttfb.json"))?,
            idle: read(args, &format!("{key}-idle.json"))?,
        });
    }
    Ok(paths)
}

fn read<T: for<'de> Deserialize<'de>>(args: &ReportArgs, name: &str) -> anyhow::Result<Option<T>> {
    let path = args.dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

fn render(args: &ReportArgs, p: &[Path]) -> anyhow::Result<String> {
    let [direct, floor, gateway] = p else {
        anyhow::bail!("expected three paths");
    };
    let rate = fmt_rate(args.rps);
    let mut md = String::new();
    writeln!(md, "# {}\n", args.title)?;
    for m in &args.meta {
        writeln!(md, "- {m}")?;
    }

    writeln!(md, "\n## Non-streaming: `POST /v1/chat/completions`\n")?;
    writeln!(md, "| Path | Saturation req/s | Proxy core busy | CPU µs/req | CPU vs floor | CPU µs/req @ {rate} | p50 µs @ {rate} | p99 µs @ {rate} | Added p50 µs | Added p99 µs | RSS idle MB | RSS under load MB | Errors |")?;
    writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for path in p {
        let is_proxy = !std::ptr::eq(path, direct);
        let (run, fixed) = (path.sat.as_ref(), path.rate.as_ref());
        let cells = [
            path.label.to_owned(),
            opt(run.map(|r| r.rps), 0),
            busy(run),
            opt(run.and_then(|r| r.cpu_us_per_req), 1),
            cpu_ratio(run, floor.sat.as_ref()),
            cpu_with_ratio(fixed, floor.rate.as_ref()),
            opt(fixed.and_then(|r| r.p50_us), 1),
            opt(fixed.and_then(|r| r.p99_us), 1),
            added(is_proxy, fixed, direct.rate.as_ref(), |r| r.p50_us),
            added(is_proxy, fixed, direct.rate.as_ref(), |r| r.p99_us),
            opt(path.idle.as_ref().map(|i| mb(i.rss_kb)), 1),
            opt(rss_under_load(run), 1),
            errors(&[run, fixed]),
        ];
        writeln!(md, "| {} |", cells.join(" | "))?;
    }

    writeln!(md, "\n## Streaming: `\"stream\": true`\n")?;
    writeln!(md, "| Path | Saturation req/s | Proxy core busy | CPU µs/req | CPU vs floor | CPU µs/req @ {rate} | TTFB p50 µs @ {rate} | TTFB p99 µs | Added TTFB p50 µs | Added TTFB p99 µs | End p50 µs | RSS under load MB | Errors |")?;
    writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for path in p {
        let is_proxy = !std::ptr::eq(path, direct);
        let (run, fixed) = (path.sat_stream.as_ref(), path.ttfb.as_ref());
        let cells = [
            path.label.to_owned(),
            opt(run.map(|r| r.rps), 0),
            busy(run),
            opt(run.and_then(|r| r.cpu_us_per_req), 1),
            cpu_ratio(run, floor.sat_stream.as_ref()),
            cpu_with_ratio(fixed, floor.ttfb.as_ref()),
            opt(fixed.and_then(|r| r.ttfb_p50_us), 1),
            opt(fixed.and_then(|r| r.ttfb_p99_us), 1),
            added(is_proxy, fixed, direct.ttfb.as_ref(), |r| r.ttfb_p50_us),
            added(is_proxy, fixed, direct.ttfb.as_ref(), |r| r.ttfb_p99_us),
            opt(fixed.and_then(|r| r.p50_us), 1),
            opt(rss_under_load(run), 1),
            errors(&[run, fixed]),
        ];
        writeln!(md, "| {} |", cells.join(" | "))?;
    }

    writeln!(md, "\n## Goals (gateway)\n")?;
    writeln!(md, "| Goal | Target | Measured | Result |")?;
    writeln!(md, "|---|---|---|---|")?;
    for (what, run, floor_run) in [
        ("CPU per request, non-streaming", &gateway.sat, &floor.sat),
        (
            "CPU per request, streaming",
            &gateway.sat_stream,
            &floor.sat_stream,
        ),
    ] {
        let r = run.as_ref().and_then(|g| {
            let (cpu, floor_cpu) = (g.cpu_us_per_req?, floor_run.as_ref()?.cpu_us_per_req?);
            let x = cpu / floor_cpu;
            let measured = format!("{x:.2}× ({cpu:.1} vs {floor_cpu:.1} µs)");
            Some((g, measured, x <= CPU_GOAL))
        });
        goal_row(&mut md, what, &format!("≤ {CPU_GOAL}× floor"), r)?;
    }
    let p50 = |r: &Option<RunResult>| r.as_ref().and_then(|r| r.p50_us);
    let r = gateway.rate.as_ref().and_then(|g| {
        let added = g.p50_us? - p50(&direct.rate)?;
        let floor_added = p50(&floor.rate).zip(p50(&direct.rate)).map(|(f, d)| f - d);
        let measured = match floor_added {
            Some(f) => format!("{added:+.1} µs (floor: {f:+.1} µs)"),
            None => format!("{added:+.1} µs"),
        };
        Some((g, measured, added < ADDED_P50_GOAL_US))
    });
    goal_row(
        &mut md,
        &format!("Added p50 latency @ {rate}"),
        &format!("< {ADDED_P50_GOAL_US} µs"),
        r,
    )?;
    let idle = gateway.idle.as_ref().map(|i| mb(i.rss_kb));
    writeln!(
        md,
        "| Idle RSS | < {IDLE_RSS_GOAL_MB} MB | {} | {} |",
        idle.map_or("–".to_owned(), |m| format!("{m:.1} MB")),
        idle.map_or("n/a", |m| if m < IDLE_RSS_GOAL_MB {
            "PASS"
        } else {
            "MISS"
        }),
    )?;

    writeln!(md, "\n## Notes\n")?;
    if let Ok(notes) = std::fs::read_to_string(args.dir.join("notes.txt")) {
        for line in notes.lines().filter(|l| !l.trim().is_empty()) {
            writeln!(md, "- {line}")?;
        }
    }
    writeln!(
        md,
        "- Proxy under test pinned to core 0; load generator and mock upstream share core 1."
    )?;
    if let Some(line) = other_work(floor, gateway) {
        writeln!(md, "- {line}")?;
    }
    writeln!(md, "- In every scenario the paths take turns in short blocks of one load-generator run, so that other work on the machine falls on all of them alike.")?;
    writeln!(md, "- CPU µs/req: utime+stime of the proxy process (`/proc/PID/stat`) over its measured blocks, divided by the 2xx responses completed in them. \"Proxy core busy\" is that CPU time over the blocks' wall time (1.00 = core 0 saturated; lower means core 1, shared by the load generator and the mock, was the limit, or other work took core 0).")?;
    writeln!(md, "- Latencies at a fixed rate are open loop, measured from each request's intended send time; \"added\" = through the proxy minus direct to the mock.")?;
    if let Some(d) = &direct.rate {
        if let (Some(a), Some(b)) = (d.send_lag_p50_us, d.send_lag_p99_us) {
            writeln!(md, "- The load generator's own send delay (intended to actual send time, mock direct) was p50 {a:.1} µs, p99 {b:.1} µs; it is inside every latency above, on every path alike.")?;
        }
    }
    writeln!(md, "- RSS idle: `VmRSS` after start-up, before any traffic. RSS under load: highest `VmRSS` sampled every 50 ms during the proxy's measured saturation blocks. MB = 10^6 bytes.")?;
    Ok(md)
}

/// "Other work on core 0" per scenario, from the proxies' watches; `None` without core data.
fn other_work(floor: &Path, gateway: &Path) -> Option<String> {
    let mut parts = Vec::new();
    let mut spoiled = Vec::new();
    for (name, runs) in [
        ("saturation", [&floor.sat, &gateway.sat]),
        ("fixed rate", [&floor.rate, &gateway.rate]),
        (
            "streaming saturation",
            [&floor.sat_stream, &gateway.sat_stream],
        ),
        ("streaming TTFB", [&floor.ttfb, &gateway.ttfb]),
    ] {
        let mut worst: f64 = 0.0;
        let shares: Vec<String> = ["floor", "gateway"]
            .iter()
            .zip(runs)
            .filter_map(|(label, run)| {
                let share = run.as_ref()?.proc?.other_on_core?;
                worst = worst.max(share);
                Some(format!("{label} {:.0}%", share * 100.0))
            })
            .collect();
        if worst > 0.05 {
            spoiled.push(name);
        }
        if !shares.is_empty() {
            parts.push(format!("{name} {}", shares.join(", ")));
        }
    }
    if parts.is_empty() {
        return None;
    }
    let verdict = if spoiled.is_empty() {
        "fine".to_owned()
    } else {
        format!(
            "**more than 5% in {}: other work competed with the proxy there, those numbers are less reliable**",
            spoiled.join(", ")
        )
    };
    Some(format!(
        "Core 0 time taken by anything but the proxy during its measured blocks: {} ({verdict}).",
        parts.join("; ")
    ))
}

fn goal_row(
    md: &mut String,
    what: &str,
    target: &str,
    r: Option<(&RunResult, String, bool)>,
) -> anyhow::Result<()> {
    match r {
        Some((run, measured, pass)) => {
            let verdict = if pass { "PASS" } else { "MISS" };
            let warn = if run.errors > 0 {
                format!(" ({} errors in the run)", run.errors)
            } else {
                String::new()
            };
            writeln!(md, "| {what} | {target} | {measured} | {verdict}{warn} |")?;
        }
        None => writeln!(md, "| {what} | {target} | – | n/a |")?,
    }
    Ok(())
}

/// `1000.0` as `1,000 req/s`.
fn fmt_rate(rps: f64) -> String {
    let digits = (rps.round() as u64).to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out} req/s")
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

fn busy(r: Option<&RunResult>) -> String {
    opt(r.and_then(|r| r.proc).map(|p| p.cpu_util), 2)
}

/// CPU per request of `run` over the floor's.
fn cpu_ratio(run: Option<&RunResult>, floor: Option<&RunResult>) -> String {
    match (
        run.and_then(|r| r.cpu_us_per_req),
        floor.and_then(|r| r.cpu_us_per_req),
    ) {
        (Some(v), Some(f)) if f > 0.0 => format!("{:.2}×", v / f),
        _ => "–".to_owned(),
    }
}

/// CPU per request with its ratio to the floor's in brackets, for the fixed-rate runs.
fn cpu_with_ratio(run: Option<&RunResult>, floor: Option<&RunResult>) -> String {
    match run.and_then(|r| r.cpu_us_per_req) {
        Some(v) => match cpu_ratio(run, floor).as_str() {
            "–" => format!("{v:.1}"),
            x => format!("{v:.1} ({x})"),
        },
        None => "–".to_owned(),
    }
}

fn added(
    is_proxy: bool,
    run: Option<&RunResult>,
    direct: Option<&RunResult>,
    field: fn(&RunResult) -> Option<f64>,
) -> String {
    if !is_proxy {
        return "–".to_owned();
    }
    match (run.and_then(field), direct.and_then(field)) {
        (Some(a), Some(b)) => format!("{:+.1}", a - b),
        _ => "–".to_owned(),
    }
}

fn mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

/// Highest RSS sampled during a (saturation) run.
fn rss_under_load(run: Option<&RunResult>) -> Option<f64> {
    run?.proc.map(|p| mb(p.rss_max_kb))
}

fn errors(runs: &[Option<&RunResult>]) -> String {
    let present: Vec<_> = runs.iter().flatten().collect();
    if present.is_empty() {
        return "–".to_owned();
    }
    present.iter().map(|r| r.errors).sum::<u64>().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_get_thousands_separators() {
        assert_eq!(fmt_rate(1000.0), "1,000 req/s");
        assert_eq!(fmt_rate(250.0), "250 req/s");
        assert_eq!(fmt_rate(1_234_567.0), "1,234,567 req/s");
    }

    #[test]
    fn renders_missing_gateway_as_not_available() {
        let dir = tempfile::tempdir().unwrap();
        let sat = r#"{"mode":"saturate","requests":1000,"errors":0,"window_secs":1.0,"rps":1000.0,"p50_us":50.0,"p99_us":90.0,"cpu_us_per_req":20.0,"proc":{"pid":1,"cpu_secs":0.02,"cpu_util":0.5,"rss_max_kb":4000,"other_on_core":0.02}}"#;
        let rate = r#"{"mode":"rate","requests":1000,"errors":0,"window_secs":1.0,"rps":1000.0,"p50_us":70.0,"p90_us":80.0,"p99_us":95.0,"max_us":99.0}"#;
        std::fs::write(dir.path().join("direct-rate.json"), rate).unwrap();
        std::fs::write(dir.path().join("floor-sat.json"), sat).unwrap();
        std::fs::write(
            dir.path().join("floor-rate.json"),
            rate.replace("70.0", "95.5"),
        )
        .unwrap();
        std::fs::write(dir.path().join("floor-idle.json"), r#"{"rss_kb":2048}"#).unwrap();
        let args = ReportArgs {
            dir: dir.path().to_owned(),
            title: "t".into(),
            meta: vec!["Commit: abc".into()],
            rps: 1000.0,
            out: None,
        };
        let paths = load(&args).unwrap();
        let md = render(&args, &paths).unwrap();
        assert!(md.contains("- Commit: abc"), "{md}");
        assert!(md.contains("saturation floor 2% (fine)"), "{md}");
        assert!(
            md.contains(
                "| floor (bench-floor) | 1000 | 0.50 | 20.0 | 1.00× | – | 95.5 | 95.0 | +25.5 |"
            ),
            "{md}"
        );
        assert!(md.contains("| Idle RSS | < 20 MB | – | n/a |"), "{md}");
    }
}
