//! Renders a run directory (the JSON files `bench/run.sh` collects) as the markdown report:
//! one table for non-streaming requests, one for streaming, and the goals with PASS/MISS
//! (also appended to `--goals` as data). A difference from mock direct below zero is not
//! printed as a latency: its cell reads `< 0 †` and a note gives the numbers and the reason.
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
    /// Append one line per goal to this file: `PASS`, `MISS` or `n/a`, the goal and what was
    /// measured, separated by tabs (`bench/run.sh` reads it for `BENCH_STRICT`).
    #[arg(long)]
    goals: Option<PathBuf>,
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
    let (md, found) = render(args, &load(args)?)?;
    print!("{md}");
    if let Some(out) = &args.out {
        std::fs::write(out, &md).with_context(|| format!("write {}", out.display()))?;
    }
    if let Some(path) = &args.goals {
        append_goals(path, &found.goals)?;
    }
    Ok(())
}

/// Appends `RESULT<TAB>GOAL<TAB>MEASURED` lines.
fn append_goals(path: &std::path::Path, goals: &[Verdict]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    for v in goals {
        writeln!(file, "{}\t{}\t{}", v.result, v.goal, v.measured)
            .with_context(|| format!("write {}", path.display()))?;
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

/// What the report works out besides the markdown: the goals' verdicts and the differences
/// from mock direct that came out below zero.
#[derive(Default)]
struct Findings {
    goals: Vec<Verdict>,
    /// "what: through µs − direct µs" for each negative "added" cell.
    negatives: Vec<String>,
}

/// One goal's outcome: `PASS`, `MISS` or `n/a` (not measured).
struct Verdict {
    result: &'static str,
    goal: String,
    measured: String,
}

/// Marks a through-minus-direct difference that is below zero (explained under Notes).
const NEGATIVE: &str = "< 0 †";

fn render(args: &ReportArgs, p: &[Path]) -> anyhow::Result<(String, Findings)> {
    let [direct, floor, gateway] = p else {
        anyhow::bail!("expected three paths");
    };
    let mut found = Findings::default();
    let mut md = String::new();
    writeln!(md, "# {}\n", args.title)?;
    for m in &args.meta {
        writeln!(md, "- {m}")?;
    }
    non_streaming_table(&mut md, &mut found, args.rps, p)?;
    streaming_table(&mut md, &mut found, args.rps, p)?;
    goals(&mut md, &mut found, args.rps, [direct, floor, gateway])?;
    notes(&mut md, args, &found, [direct, floor, gateway])?;
    Ok((md, found))
}

fn non_streaming_table(
    md: &mut String,
    found: &mut Findings,
    rps: f64,
    p: &[Path],
) -> anyhow::Result<()> {
    let (direct, floor) = (&p[0], &p[1]);
    let rate = fmt_rate(rps);
    writeln!(md, "\n## Non-streaming: `POST /v1/chat/completions`\n")?;
    writeln!(md, "| Path | Saturation req/s | Proxy core busy | CPU µs/req | CPU vs floor | CPU µs/req @ {rate} | p50 µs @ {rate} | p99 µs @ {rate} | Added p50 µs | Added p99 µs | RSS idle MB | RSS under load MB | Errors |")?;
    writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for path in p {
        let is_proxy = !std::ptr::eq(path, direct);
        let (run, fixed) = (path.sat.as_ref(), path.rate.as_ref());
        let mut added = |what: &str, field: fn(&RunResult) -> Option<f64>| {
            let what = format!("non-streaming {what}, {}", path.label);
            added(found, &what, is_proxy, fixed, direct.rate.as_ref(), field)
        };
        let cells = [
            path.label.to_owned(),
            opt(run.map(|r| r.rps), 0),
            busy(run),
            opt(run.and_then(|r| r.cpu_us_per_req), 1),
            cpu_ratio(run, floor.sat.as_ref()),
            cpu_with_ratio(fixed, floor.rate.as_ref()),
            opt(fixed.and_then(|r| r.p50_us), 1),
            opt(fixed.and_then(|r| r.p99_us), 1),
            added("added p50", |r| r.p50_us),
            added("added p99", |r| r.p99_us),
            opt(path.idle.as_ref().map(|i| mb(i.rss_kb)), 1),
            opt(rss_under_load(run), 1),
            errors(&[run, fixed]),
        ];
        writeln!(md, "| {} |", cells.join(" | "))?;
    }
    Ok(())
}

fn streaming_table(
    md: &mut String,
    found: &mut Findings,
    rps: f64,
    p: &[Path],
) -> anyhow::Result<()> {
    let (direct, floor) = (&p[0], &p[1]);
    let rate = fmt_rate(rps);
    writeln!(md, "\n## Streaming: `\"stream\": true`\n")?;
    writeln!(md, "| Path | Saturation req/s | Proxy core busy | CPU µs/req | CPU vs floor | CPU µs/req @ {rate} | TTFB p50 µs @ {rate} | TTFB p99 µs | Added TTFB p50 µs | Added TTFB p99 µs | End p50 µs | RSS under load MB | Errors |")?;
    writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for path in p {
        let is_proxy = !std::ptr::eq(path, direct);
        let (run, fixed) = (path.sat_stream.as_ref(), path.ttfb.as_ref());
        let mut added = |what: &str, field: fn(&RunResult) -> Option<f64>| {
            let what = format!("streaming {what}, {}", path.label);
            added(found, &what, is_proxy, fixed, direct.ttfb.as_ref(), field)
        };
        let cells = [
            path.label.to_owned(),
            opt(run.map(|r| r.rps), 0),
            busy(run),
            opt(run.and_then(|r| r.cpu_us_per_req), 1),
            cpu_ratio(run, floor.sat_stream.as_ref()),
            cpu_with_ratio(fixed, floor.ttfb.as_ref()),
            opt(fixed.and_then(|r| r.ttfb_p50_us), 1),
            opt(fixed.and_then(|r| r.ttfb_p99_us), 1),
            added("added TTFB p50", |r| r.ttfb_p50_us),
            added("added TTFB p99", |r| r.ttfb_p99_us),
            opt(fixed.and_then(|r| r.p50_us), 1),
            opt(rss_under_load(run), 1),
            errors(&[run, fixed]),
        ];
        writeln!(md, "| {} |", cells.join(" | "))?;
    }
    Ok(())
}

fn goals(
    md: &mut String,
    found: &mut Findings,
    rps: f64,
    [direct, floor, gateway]: [&Path; 3],
) -> anyhow::Result<()> {
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
        goal_row(md, found, what, &format!("≤ {CPU_GOAL}× floor"), r)?;
    }
    let p50 = |r: &Option<RunResult>| r.as_ref().and_then(|r| r.p50_us);
    let r = gateway.rate.as_ref().and_then(|g| {
        let (g50, d50) = (g.p50_us?, p50(&direct.rate)?);
        let mut measured = format!(
            "{} µs",
            signed(found, "goal's added p50, gateway", g50, d50)
        );
        if let Some(f50) = p50(&floor.rate) {
            let f = signed(found, "goal's added p50, floor", f50, d50);
            measured = format!("{measured} (floor: {f} µs)");
        }
        Some((g, measured, g50 - d50 < ADDED_P50_GOAL_US))
    });
    let what = format!("Added p50 latency @ {}", fmt_rate(rps));
    goal_row(md, found, &what, &format!("< {ADDED_P50_GOAL_US} µs"), r)?;
    let idle = gateway.idle.as_ref().map(|i| mb(i.rss_kb));
    let measured = idle.map_or("–".to_owned(), |m| format!("{m:.1} MB"));
    let result = idle.map_or(
        "n/a",
        |m| if m < IDLE_RSS_GOAL_MB { "PASS" } else { "MISS" },
    );
    writeln!(
        md,
        "| Idle RSS | < {IDLE_RSS_GOAL_MB} MB | {measured} | {result} |"
    )?;
    found.goals.push(Verdict {
        result,
        goal: format!("Idle RSS < {IDLE_RSS_GOAL_MB} MB"),
        measured,
    });
    Ok(())
}

fn notes(
    md: &mut String,
    args: &ReportArgs,
    found: &Findings,
    [direct, floor, gateway]: [&Path; 3],
) -> anyhow::Result<()> {
    writeln!(md, "\n## Notes\n")?;
    if let Ok(notes) = std::fs::read_to_string(args.dir.join("notes.txt")) {
        for line in notes.lines().filter(|l| !l.trim().is_empty()) {
            writeln!(md, "- {line}")?;
        }
    }
    if let Some(line) = negatives_note(&found.negatives) {
        writeln!(md, "- {line}")?;
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
    writeln!(md, "- Latencies at a fixed rate are open loop, measured from each request's intended send time; \"added\" = through the proxy minus direct to the mock: a difference of two percentiles, each taken over different requests.")?;
    if let Some(d) = &direct.rate {
        if let (Some(a), Some(b)) = (d.send_lag_p50_us, d.send_lag_p99_us) {
            writeln!(md, "- The load generator's own send delay (intended to actual send time, mock direct) was p50 {a:.1} µs, p99 {b:.1} µs; it is inside every latency above, on every path alike.")?;
        }
    }
    writeln!(md, "- RSS idle: `VmRSS` after start-up, before any traffic. RSS under load: highest `VmRSS` sampled every 50 ms during the proxy's measured saturation blocks. MB = 10^6 bytes.")?;
    Ok(())
}

/// Why a difference from mock direct can be negative, with the run's own numbers.
fn negatives_note(negatives: &[String]) -> Option<String> {
    if negatives.is_empty() {
        return None;
    }
    Some(format!(
        "† Through the proxy minus mock direct came out below zero, so it is not shown as a number: {}. \
         That is not a proxy answering sooner than the mock behind it (every proxied request \
         includes a whole exchange with that mock): an added latency is the difference of two \
         percentiles, each over different requests in different blocks of the run. A p99 is set by \
         the slowest 1% (about a hundred requests in ten seconds at 1,000 req/s), so a stall of some \
         tens of milliseconds that falls in the direct path's blocks (on core 1, which the load \
         generator and the mock share) lifts the direct tail above the proxies'. Such a cell \
         measures that stall, not the proxy; the proxies' own percentiles remain comparable with \
         each other.",
        negatives.join("; ")
    ))
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
    found: &mut Findings,
    what: &str,
    target: &str,
    r: Option<(&RunResult, String, bool)>,
) -> anyhow::Result<()> {
    let (result, measured) = match r {
        Some((run, measured, pass)) => {
            let result = if pass { "PASS" } else { "MISS" };
            let warn = if run.errors > 0 {
                format!(" ({} errors in the run)", run.errors)
            } else {
                String::new()
            };
            writeln!(md, "| {what} | {target} | {measured} | {result}{warn} |")?;
            (result, measured)
        }
        None => {
            writeln!(md, "| {what} | {target} | – | n/a |")?;
            ("n/a", "–".to_owned())
        }
    };
    found.goals.push(Verdict {
        result,
        goal: format!("{what} {target}"),
        measured,
    });
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

/// Through the proxy minus direct, for a table cell.
fn added(
    found: &mut Findings,
    what: &str,
    is_proxy: bool,
    run: Option<&RunResult>,
    direct: Option<&RunResult>,
    field: fn(&RunResult) -> Option<f64>,
) -> String {
    if !is_proxy {
        return "–".to_owned();
    }
    match (run.and_then(field), direct.and_then(field)) {
        (Some(through), Some(direct)) => signed(found, what, through, direct),
        _ => "–".to_owned(),
    }
}

/// `through − direct` as `+12.3`, or [`NEGATIVE`] when below zero (then remembered for the note).
fn signed(found: &mut Findings, what: &str, through: f64, direct: f64) -> String {
    let d = through - direct;
    if d < 0.0 {
        found
            .negatives
            .push(format!("{what}: {through:.1} − direct {direct:.1} µs"));
        return NEGATIVE.to_owned();
    }
    format!("{d:+.1}")
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
            goals: None,
        };
        let paths = load(&args).unwrap();
        let (md, _) = render(&args, &paths).unwrap();
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

    const SAT: &str = r#"{"mode":"saturate","requests":1000,"errors":0,"window_secs":1.0,"rps":1000.0,"cpu_us_per_req":CPU,"proc":{"pid":1,"cpu_secs":0.02,"cpu_util":0.5,"rss_max_kb":4000}}"#;
    const RATE: &str = r#"{"mode":"rate","requests":1000,"errors":0,"window_secs":1.0,"rps":1000.0,"p50_us":P50,"p99_us":P99}"#;
    const TTFB: &str = r#"{"mode":"ttfb","requests":1000,"errors":0,"window_secs":1.0,"rps":1000.0,"ttfb_p50_us":P50,"ttfb_p99_us":P99,"p50_us":P50}"#;

    /// A run directory with every file of the three paths: CPU per request and latencies
    /// (p50, p99) per path, in the order direct, floor, gateway.
    fn full_run(cpu: [f64; 3], lat: [(f64, f64); 3], gateway_idle_kb: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        for (i, key) in ["direct", "floor", "gateway"].into_iter().enumerate() {
            let (p50, p99) = lat[i];
            let fill = |t: &str| {
                t.replace("CPU", &cpu[i].to_string())
                    .replace("P50", &p50.to_string())
                    .replace("P99", &p99.to_string())
            };
            write(&format!("{key}-sat.json"), fill(SAT));
            write(&format!("{key}-sat-stream.json"), fill(SAT));
            write(&format!("{key}-rate.json"), fill(RATE));
            write(&format!("{key}-ttfb.json"), fill(TTFB));
        }
        write("floor-idle.json", r#"{"rss_kb":2048}"#.into());
        write(
            "gateway-idle.json",
            format!(r#"{{"rss_kb":{gateway_idle_kb}}}"#),
        );
        dir
    }

    fn args(dir: &tempfile::TempDir) -> ReportArgs {
        ReportArgs {
            dir: dir.path().to_owned(),
            title: "t".into(),
            meta: vec![],
            rps: 1000.0,
            out: None,
            goals: Some(dir.path().join("goals.tsv")),
        }
    }

    #[test]
    fn a_negative_difference_from_direct_is_explained_not_printed() {
        // Direct's p99 (1851.4) above both proxies' (804.9, 822.8), as in a 2026-12-02 run.
        let lat = [(178.7, 1851.4), (329.2, 804.9), (345.1, 822.8)];
        let dir = full_run([0.0, 10.0, 12.0], lat, 10_000);
        let (md, found) = render(&args(&dir), &load(&args(&dir)).unwrap()).unwrap();
        assert!(!md.contains("| -"), "a negative number in a table: {md}");
        assert!(!md.contains("-1046.5") && !md.contains("−1046.5"), "{md}");
        assert!(
            md.contains("| +150.5 | < 0 † |") && md.contains("| +166.4 | < 0 † |"),
            "{md}"
        );
        assert_eq!(found.negatives.len(), 4, "{:?}", found.negatives);
        assert!(
            md.contains("streaming added TTFB p99, floor (bench-floor): 804.9 − direct 1851.4 µs"),
            "{md}"
        );
        assert!(md.contains("A p99 is set by the slowest 1%"), "{md}");
    }

    #[test]
    fn without_negative_differences_there_is_no_dagger() {
        let lat = [(120.0, 280.0), (258.6, 589.3), (273.9, 674.3)];
        let dir = full_run([0.0, 16.6, 22.1], lat, 17_000);
        let (md, found) = render(&args(&dir), &load(&args(&dir)).unwrap()).unwrap();
        assert!(found.negatives.is_empty());
        assert!(!md.contains('†'), "{md}");
        assert!(
            md.contains("| +153.9 µs (floor: +138.6 µs) | MISS |"),
            "{md}"
        );
    }

    #[test]
    fn every_goal_is_written_to_the_goals_file() {
        let lat = [(120.0, 280.0), (258.6, 589.3), (273.9, 674.3)];
        let dir = full_run([0.0, 16.6, 22.1], lat, 30_000);
        run(&args(&dir)).unwrap();
        let goals = std::fs::read_to_string(dir.path().join("goals.tsv")).unwrap();
        let lines: Vec<Vec<&str>> = goals.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(lines.len(), 4, "{goals}");
        assert_eq!(lines[0][0], "PASS", "{goals}");
        assert_eq!(lines[0][1], "CPU per request, non-streaming ≤ 1.5× floor");
        assert_eq!(lines[2][0], "MISS", "{goals}");
        assert!(lines[2][1].starts_with("Added p50 latency"), "{goals}");
        assert_eq!(lines[2][2], "+153.9 µs (floor: +138.6 µs)");
        assert_eq!(lines[3], ["MISS", "Idle RSS < 20 MB", "30.7 MB"], "{goals}");
    }
}
