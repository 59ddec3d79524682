//! The file sink: one JSON line per record, on a thread of its own (file writes
//! block). When the file reaches `max_bytes` it becomes `path.1` (the older ones move
//! up to `path.<keep>`, the oldest is deleted) and a new file starts. The buffer is
//! flushed whenever the queue is empty, so a quiet gateway's file is current.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use super::LogRecord;

/// Open `path` (append) and write what `rx` brings until every sender is gone.
pub(super) fn start(
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    mut rx: mpsc::Receiver<Arc<LogRecord>>,
    sent: Counter,
) -> Result<(), String> {
    let file = open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let size = file.metadata().map_or(0, |m| m.len());
    let mut out = Output {
        path,
        max_bytes,
        keep,
        writer: BufWriter::new(file),
        size,
    };
    std::thread::Builder::new()
        .name("liter-llm-log-file".into())
        .spawn(move || {
            while let Some(record) = rx.blocking_recv() {
                match out.write(&record) {
                    Ok(()) => {
                        sent.inc();
                    }
                    Err(e) => tracing::warn!(error = %e, "the log file sink could not write"),
                }
                if rx.is_empty() {
                    let _ = out.writer.flush();
                }
            }
            let _ = out.writer.flush();
        })
        .map_err(|e| format!("cannot start its thread: {e}"))?;
    Ok(())
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

struct Output {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    writer: BufWriter<File>,
    size: u64,
}

impl Output {
    fn write(&mut self, record: &LogRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.writer.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    /// `path` → `path.1` → ... → `path.<keep>`; the oldest goes. With `keep = 0` the
    /// file is only emptied.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.writer.flush()?;
        let numbered = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if self.keep > 0 {
            let _ = std::fs::remove_file(numbered(self.keep));
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            std::fs::rename(&self.path, numbered(1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        self.writer = BufWriter::new(open(&self.path)?);
        self.size = 0;
        Ok(())
    }
}
