//! Reloading the config file while serving: on `SIGHUP`, and with `--watch` when the
//! file's length, modification time or contents change (looked at every second).
//! Each reload goes through `Live::reload`: validated as at start-up, refused with
//! the start-up's error (the running config stays), or swapped in at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use liter_llm_proxy::reload::Live;
use tokio::task::JoinHandle;

/// How often `--watch` looks at the file.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Listen for `SIGHUP` (and, with `watch`, changes of that file) and reload on each.
pub fn spawn(live: Arc<Live>, watch: Option<PathBuf>) -> std::io::Result<JoinHandle<()>> {
    let mut hup = Hangups::new()?;
    Ok(tokio::spawn(async move {
        let mut seen = watch.as_deref().map(fingerprint);
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let why = tokio::select! {
                () = hup.next() => "SIGHUP",
                _ = tick.tick(), if watch.is_some() => {
                    let now = watch.as_deref().map(fingerprint);
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    "the config file changed"
                }
            };
            reload(&live, why).await;
        }
    }))
}

async fn reload(live: &Live, why: &str) {
    tracing::info!("reloading the config file ({why})");
    match live.reload().await {
        Ok(changes) => tracing::info!("config reloaded: {}", changes.summary()),
        Err(e) => tracing::error!("config reload refused, the running config stays: {e}"),
    }
    // The parsing and validation code is not needed again until the next reload.
    crate::image::release();
}

/// What `--watch` compares: the file's length, modification time and a digest of
/// its contents (`None` while it cannot be read, e.g. in the middle of a rename).
fn fingerprint(path: &Path) -> Option<(u64, SystemTime, u64)> {
    use std::hash::{Hash, Hasher};
    let meta = std::fs::metadata(path).ok()?;
    let bytes = std::fs::read(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some((meta.len(), meta.modified().ok()?, h.finish()))
}

/// `SIGHUP`, listened to from start-up on (elsewhere than Unix: never).
struct Hangups {
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Hangups {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Hangups {
                hup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Hangups {})
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            if self.hup.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    }
}
