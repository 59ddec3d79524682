//! Log output: lines are formatted on the request path but written to stdout in
//! batches, so a busy gateway does not pay one `write` system call per request.
//!
//! A background thread flushes the buffer every [`FLUSH_EVERY`]; warnings and errors
//! are flushed at once, and so is everything when the process stops ([`Logs::flush`]).
//! At most that interval's worth of info lines can be lost if the process is killed.

use std::io::{self, BufWriter, Stdout, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

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
