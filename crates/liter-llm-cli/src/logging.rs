//! Log output: lines are formatted on the request path but written to stdout in
//! batches, so a busy gateway does not pay one `write` system call per request.
//!
//! A background thread flushes the buffer every [`FLUSH_EVERY`]; warnings and errors
//! are flushed at once, and so is everything when the process stops ([`Logs::flush`]).
//! At most that interval's worth of info lines can be lost if the process is killed.
//!
//! The one line per request (target [`REQUEST_TARGET`]) is the only log line on the hot
//! path, so [`RequestLines`] writes it without `tracing-subscriber`'s formatter: the same
//! text (or JSON) the formatter would write, built in a reused buffer with no
//! `fmt::Write` machinery for the common field types. Every other event goes through
//! the formatter as before.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, BufWriter, Stdout, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};

pub use liter_llm_proxy::telemetry::REQUEST_TARGET;

pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The shared, buffered stdout.
pub struct Logs {
    out: Mutex<BufWriter<Stdout>>,
}

impl Logs {
    /// Start the buffer and its flusher thread.
    pub fn start() -> Arc<Logs> {
        let logs = Arc::new(Logs {
            out: Mutex::new(BufWriter::with_capacity(64 * 1024, io::stdout())),
        });
        let flusher = Arc::downgrade(&logs);
        std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || loop {
                std::thread::sleep(FLUSH_EVERY);
                match flusher.upgrade() {
                    Some(logs) => logs.flush(),
                    None => break,
                }
            })
            .ok();
        logs
    }

    fn lock(&self) -> MutexGuard<'_, BufWriter<Stdout>> {
        self.out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn flush(&self) {
        let _ = self.lock().flush();
    }

    /// Append one whole line.
    fn write_line(&self, line: &[u8]) {
        let _ = self.lock().write_all(line);
    }
}

/// One event's writer: appends to the buffer; flushes on drop when `urgent`.
pub struct LineWriter<'a> {
    logs: &'a Logs,
    urgent: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.logs.lock().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.logs.lock().flush()
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if self.urgent {
            self.logs.flush();
        }
    }
}

/// The `MakeWriter` handed to the subscriber.
#[derive(Clone)]
pub struct Sink(pub Arc<Logs>);

impl<'a> MakeWriter<'a> for Sink {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter {
            logs: &self.0,
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter<'a> {
        LineWriter {
            logs: &self.0,
            // start-up lines ("listening on ...") and problems are written at once
            urgent: *meta.level() <= Level::WARN || meta.target() != "liter_llm::request",
        }
    }
}

/// The layer that writes the request lines (and only them: give it a filter on
/// [`REQUEST_TARGET`], and the formatter the opposite one).
pub struct RequestLines {
    logs: Arc<Logs>,
    json: bool,
}

impl RequestLines {
    pub fn new(logs: Arc<Logs>, json: bool) -> Self {
        Self { logs, json }
    }
}

thread_local! {
    /// The line being built, reused from one request to the next.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// `YYYY-MM-DDTHH:MM:SS.` of the last second a line was written in.
    static SECOND: RefCell<(u64, [u8; 20])> = const { RefCell::new((u64::MAX, [0; 20])) };
}

impl<S: Subscriber> Layer<S> for RequestLines {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let write = |line: &mut Vec<u8>| {
            line.clear();
            format_line(line, event, self.json, SystemTime::now());
            self.logs.write_line(line);
            if *event.metadata().level() <= Level::WARN {
                self.logs.flush();
            }
        };
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => write(&mut line),
            Err(_) => write(&mut Vec::new()),
        });
    }
}

/// The line `tracing-subscriber`'s compact formatter (no ANSI, no target) or its JSON
/// formatter (`flatten_event`) would write for `event`.
pub fn format_line(out: &mut Vec<u8>, event: &Event<'_>, json: bool, now: SystemTime) {
    let level = event.metadata().level().as_str();
    if json {
        out.extend_from_slice(b"{\"timestamp\":\"");
        timestamp(out, now);
        out.extend_from_slice(b"\",\"level\":\"");
        out.extend_from_slice(level.as_bytes());
        out.push(b'"');
    } else {
        timestamp(out, now);
        out.push(b' ');
        for _ in level.len()..5 {
            out.push(b' ');
        }
        out.extend_from_slice(level.as_bytes());
        out.push(b' ');
    }
    let mut fields = Fields {
        out,
        json,
        first: true,
    };
    event.record(&mut fields);
    if json {
        out.push(b'}');
    }
    out.push(b'\n');
}

/// RFC 3339 UTC with microseconds, as `tracing-subscriber`'s `SystemTime` writes it.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            *cached = (secs, second_prefix(secs));
        }
        out.extend_from_slice(&cached.1);
    });
    let micros = since.subsec_micros();
    let mut digits = [b'0'; 6];
    let mut n = micros;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS.` for a Unix time (Howard Hinnant's days-to-civil).
fn second_prefix(secs: u64) -> [u8; 20] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut p = *b"0000-00-00T00:00:00.";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            p[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year.clamp(0, 9999) as u64);
    put(5, 2, month as u64);
    put(8, 2, day as u64);
    put(11, 2, rem / 3600);
    put(14, 2, rem / 60 % 60);
    put(17, 2, rem % 60);
    p
}

/// Writes each field as the formatter would: `name=value` separated by spaces (the
/// message bare, first), or `,"name":value` in JSON.
struct Fields<'a> {
    out: &'a mut Vec<u8>,
    json: bool,
    first: bool,
}

impl Fields<'_> {
    /// The separator and the field's name; false for the text message, written bare.
    fn key(&mut self, field: &Field) {
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        if self.json {
            self.out.extend_from_slice(b",\"");
            self.out.extend_from_slice(name.as_bytes());
            self.out.extend_from_slice(b"\":");
            return;
        }
        if !self.first {
            self.out.push(b' ');
        }
        self.first = false;
        if name != "message" {
            self.out.extend_from_slice(name.as_bytes());
            self.out.push(b'=');
        }
    }

    fn debug_text(&mut self, value: &dyn fmt::Debug) {
        let _ = write!(self.out, "{value:?}");
    }
}

/// A finite non-zero `v` below 1e-4 in magnitude as `{:?}` writes it (`4.35e-6`): the
/// same shortest round-trip digits as serde_json's, which writes some of these as
/// `0.00000435`, laid out in exponent form.
fn small_f64(out: &mut Vec<u8>, v: f64) {
    let mut buf = [0u8; 40];
    let mut w = &mut buf[..];
    if serde_json::to_writer(&mut w, &v).is_err() {
        let _ = write!(out, "{v:?}");
        return;
    }
    let len = 40 - w.len();
    let text = &buf[..len];
    let (sign, body) = match text.split_first() {
        Some((b'-', rest)) => (&b"-"[..], rest),
        _ => (&b""[..], text),
    };
    if body.contains(&b'e') {
        // Already `d.ddde-N`.
        out.extend_from_slice(text);
        return;
    }
    // `0.000ddd`: the digits after the zeros, and where the first one stands.
    let Some(frac) = body.strip_prefix(b"0.") else {
        let _ = write!(out, "{v:?}");
        return;
    };
    let zeros = frac.iter().take_while(|&&b| b == b'0').count();
    let digits = &frac[zeros..];
    let Some((first, rest)) = digits.split_first() else {
        let _ = write!(out, "{v:?}");
        return;
    };
    out.extend_from_slice(sign);
    out.push(*first);
    if !rest.is_empty() {
        out.push(b'.');
        out.extend_from_slice(rest);
    }
    let _ = write!(out, "e-{}", zeros + 1);
}

/// Printable ASCII other than `"` and `\`: `{:?}` and JSON both write it as it is.
fn plain(s: &str) -> bool {
    // no early exit, so the loop vectorises: the strings logged are short and plain
    s.bytes().fold(true, |ok, b| {
        ok & (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\')
    })
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        if !self.json && field.name() == "message" {
            // the formatter writes the message without quotes, ANSI escapes escaped
            if plain(value) {
                self.out.extend_from_slice(value.as_bytes());
            } else {
                self.debug_text(&format_args!("{}", value.escape_debug()));
            }
        } else if plain(value) {
            self.out.push(b'"');
            self.out.extend_from_slice(value.as_bytes());
            self.out.push(b'"');
        } else if self.json {
            let _ = serde_json::to_writer(&mut *self.out, value);
        } else {
            self.debug_text(&value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = value;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.out.extend_from_slice(&digits[at..]);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if value >= 0 {
            return self.record_u64(field, value as u64);
        }
        self.key(field);
        self.debug_text(&value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        // serde_json writes the shortest round-trip digits, as `{:?}` does in this range
        // (and as the JSON formatter does everywhere), without the formatting machinery.
        let decimal = value.is_finite() && (value == 0.0 || (1e-4..1e16).contains(&value.abs()));
        if self.json || decimal {
            let _ = serde_json::to_writer(&mut *self.out, &value);
        } else if value.is_finite() && value.abs() < 1e-4 {
            // Costs of one request are mostly here (a few millionths of a dollar).
            small_f64(self.out, value);
        } else {
            self.debug_text(&value);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        if self.json {
            let _ = serde_json::to_writer(&mut *self.out, &format!("{value:?}"));
        } else {
            self.debug_text(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_numbers_read_as_debug_writes_them() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut checked = 0;
        for i in 0..300_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = match i % 4 {
                // Anything small, from the bits.
                0 => f64::from_bits(x) % 1e-4,
                // Prices times token counts, as costs are made.
                1 => 1.5e-7 * ((x >> 8) % 5000) as f64 + 6e-7 * ((x >> 40) % 3000) as f64,
                2 => ((x % 1_000_000) as f64) * 1e-10,
                _ => -(((x >> 3) % 99_999) as f64) / 1e9,
            };
            if !v.is_finite() || v == 0.0 || v.abs() >= 1e-4 {
                continue;
            }
            let mut ours = Vec::new();
            small_f64(&mut ours, v);
            assert_eq!(String::from_utf8(ours).unwrap(), format!("{v:?}"), "{v:e}");
            checked += 1;
        }
        assert!(checked > 200_000, "{checked}");
    }
    use tracing_subscriber::layer::SubscriberExt;

    /// Collects what a layer writes.
    #[derive(Clone, Default)]
    struct Out(Arc<Mutex<Vec<u8>>>);

    impl Write for Out {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// `format_line` for every event.
    struct Fast(Out, bool);

    impl<S: Subscriber> Layer<S> for Fast {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            let mut line = Vec::new();
            format_line(&mut line, event, self.1, SystemTime::now());
            self.0 .0.lock().unwrap().extend_from_slice(&line);
        }
    }

    fn emit_samples() {
        let floats = [
            0.0, 0.058, 1.0, 12.5, 1234.567, 0.0001, 0.00012345, 3e-7, 1e15, 2.5e16, -0.25,
        ];
        for (i, ms) in floats.into_iter().enumerate() {
            let model = ["gpt-4o", "a \"quoted\" name", "naïve\\path", "tab\there"][i % 4];
            let method = axum_method(i);
            tracing::info!(
                target: REQUEST_TARGET,
                request_id = "req_0123",
                method = %method,
                path = "/v1/chat/completions",
                model = Some(model),
                deployment = None::<&str>,
                key = "key#0",
                status = 200 + i as u16,
                cost_usd = (i % 2 == 0).then_some(ms / 7.0),
                latency_ms = ms,
                ttfb_ms = (i % 3 == 0).then_some(ms),
                stream_completed = (i % 3 == 0).then_some(i % 2 == 0),
                error = (i % 4 == 1).then_some("upstream_timeout"),
                neg = -(i as i64),
                "request"
            );
        }
        tracing::warn!(target: REQUEST_TARGET, n = 5u64, "a warning with \"quotes\"");
    }

    fn axum_method(i: usize) -> &'static str {
        ["POST", "GET"][i % 2]
    }

    fn strip_time(s: &str, json: bool) -> String {
        s.lines()
            .map(|l| {
                if json {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    let mut v = v.as_object().unwrap().clone();
                    let ts = v.remove("timestamp").unwrap();
                    assert_eq!(ts.as_str().unwrap().len(), 27, "{l}");
                    serde_json::to_string(&v).unwrap() + &l[l.find(",\"level\"").unwrap()..]
                } else {
                    assert_eq!(&l[26..27], "Z", "{l}");
                    l[27..].to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn writes_what_the_formatter_writes() {
        for json in [false, true] {
            let (slow, fast) = (Out::default(), Out::default());
            let writer = slow.clone();
            let formatter = tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(false)
                .with_writer(move || writer.clone());
            let formatter = if json {
                formatter.json().flatten_event(true).boxed()
            } else {
                formatter.compact().boxed()
            };
            let subscriber = tracing_subscriber::registry()
                .with(formatter)
                .with(Fast(fast.clone(), json));
            tracing::subscriber::with_default(subscriber, emit_samples);
            let slow = String::from_utf8(slow.0.lock().unwrap().clone()).unwrap();
            let fast = String::from_utf8(fast.0.lock().unwrap().clone()).unwrap();
            assert_eq!(slow.lines().count(), 12);
            assert_eq!(strip_time(&fast, json), strip_time(&slow, json));
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |secs: u64, micros: u64| {
            let mut out = Vec::new();
            timestamp(
                &mut out,
                UNIX_EPOCH + Duration::from_micros(secs * 1_000_000 + micros),
            );
            String::from_utf8(out).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_825_599, 7), "2000-02-29T11:59:59.000007Z");
        assert_eq!(at(1_795_443_378, 902_669), "2026-11-23T14:16:18.902669Z");
        assert_eq!(at(4_102_444_800, 999_999), "2100-01-01T00:00:00.999999Z");
        // the cached second is replaced when the second changes
        assert_eq!(at(1_795_443_379, 1), "2026-11-23T14:16:19.000001Z");
    }
}
