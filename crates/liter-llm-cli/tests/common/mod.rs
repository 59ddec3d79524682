//! Running the real `liter-llm` binary in tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_liter-llm");

pub fn cmd(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_remove("LITER_LLM_MASTER_KEY")
        .env_remove("RUST_LOG");
    c
}

/// A running gateway process; its stdout and stderr are collected in the background,
/// by one reader thread each.
pub struct Proc {
    pub child: Child,
    pub url: String,
    pub output: Arc<Mutex<String>>,
    /// Joined by [`Proc::wait`]: each ends at its pipe's end of file, so once both are
    /// joined every line the process wrote is in `output`.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Proc {
    pub fn spawn(mut command: Command) -> Proc {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let mut readers = Vec::new();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Some(i) = line.find("listening on http://") {
                        let url: String = line[i + "listening on ".len()..]
                            .chars()
                            // (a JSON log line quotes the message)
                            .take_while(|c| !c.is_whitespace() && *c != '"')
                            .collect();
                        let _ = tx.send(url);
                    }
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            }));
        }
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("gateway did not start: {}", output.lock().unwrap()));
        Proc {
            child,
            url,
            output,
            readers,
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Block until the output contains `needle` (a readiness signal, not a fixed sleep).
    pub fn wait_for_output(&self, needle: &str) {
        for _ in 0..2000 {
            if self.output.lock().unwrap().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("never saw {needle:?} in:\n{}", self.output.lock().unwrap());
    }

    /// Waits for the process to exit and for its output to be read to the end.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        // The process is gone, so its pipes reach end of file and the readers end.
        for reader in std::mem::take(&mut self.readers) {
            reader.join().unwrap();
        }
        let out = self.output.lock().unwrap().clone();
        (status, out)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// `GET url` with `key` as the bearer token, read as JSON.
pub async fn get_json(url: &str, key: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
