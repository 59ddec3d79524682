//! Safe reload: the running gateway behind an [`ArcSwap`], replaced whole and at once.
//!
//! [`Live`] holds the current [`App`] and its router. Each request loads them once
//! (`server::conn`), so it runs to its end on the App it started with, however many
//! reloads happen meanwhile. A reload ([`Live::reload`], on `SIGHUP` or `--watch`; and
//! the model admin API, which changes the stored models) reads and validates the file
//! exactly as start-up does, refuses a config that changes a setting only a restart
//! can change ([`changes::restart_needed`]), builds the new App from the running one
//! ([`App::reload`]: counters, spend, windows and deployment state carry over), and
//! only then swaps. Any failure leaves the running App as it was. Reloads run one at a
//! time; the log says what changed ([`changes::Changes`]), never a secret.
//!
//! Above `app` and `config`; used by the HTTP edge (`server`) and the admin API.

pub mod changes;
pub mod sync;

use std::sync::{Arc, Mutex, PoisonError, Weak};

use arc_swap::ArcSwap;
use axum::Router;
use tokio::task::JoinHandle;

use crate::app::{App, BuildError};
use crate::config::{ConfigError, Reading, Source, StoredEntry};
pub use changes::Changes;

/// The App requests are served by, and its router.
pub struct Current {
    pub app: Arc<App>,
    pub router: Router,
}

/// The request extension with which a route reaches the [`Live`] serving it (weak:
/// the router it sits in belongs to the `Live`).
#[derive(Clone)]
pub struct LiveHandle(pub Weak<Live>);

/// Builds the router of an App; `Weak<Live>` is for the routes that change it.
pub type MakeRouter = fn(Arc<App>, Weak<Live>) -> Router;

/// The running gateway, replaceable at once (see the module doc).
pub struct Live {
    current: ArcSwap<Current>,
    make_router: MakeRouter,
    me: Weak<Live>,
    /// Held for a whole reload, so reloads run one at a time.
    state: tokio::sync::Mutex<State>,
    /// The health probes of the current App's deployments.
    probes: Mutex<Option<JoinHandle<()>>>,
    /// Being served (probes run, and restart with each new App).
    serving: std::sync::atomic::AtomicBool,
    /// With Redis and a database: the spread of stored-model changes between
    /// gateways ([`sync`]), and the task following the others'.
    sync: std::sync::OnceLock<Arc<sync::Spread>>,
    following: Mutex<Option<JoinHandle<()>>>,
}

struct State {
    /// `None`: the config did not come from a file; reloading it is refused.
    source: Option<Source>,
    /// The models of the model admin API, after the file's.
    stored: Vec<StoredEntry>,
    /// Shutdown has begun: no more reloads.
    closed: bool,
}

/// Why a reload was refused; the running config stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the running config did not come from a file, so there is nothing to reload")]
    NoFile,
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("these settings changed and take effect only after a restart: {}; the running config stays (restore them, or restart)", .0.join(", "))]
    RestartNeeded(Vec<&'static str>),
    #[error("{0}")]
    Build(#[from] BuildError),
    #[error("the gateway is shutting down")]
    Closed,
    #[error("the model store is unavailable: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl Live {
    /// Serve `app` (with `source`, the file it came from, for reloads).
    pub fn new(app: Arc<App>, source: Option<Source>, make_router: MakeRouter) -> Arc<Live> {
        Arc::new_cyclic(|me: &Weak<Live>| {
            let router = make_router(app.clone(), me.clone());
            Live {
                current: ArcSwap::from_pointee(Current { app, router }),
                make_router,
                me: me.clone(),
                state: tokio::sync::Mutex::new(State {
                    source,
                    stored: Vec::new(),
                    closed: false,
                }),
                probes: Mutex::new(None),
                serving: std::sync::atomic::AtomicBool::new(false),
                sync: std::sync::OnceLock::new(),
                following: Mutex::new(None),
            }
        })
    }

    /// What a request is served by now (the caller keeps it for the whole request).
    pub fn current(&self) -> Arc<Current> {
        self.current.load_full()
    }

    /// The current router (it holds its App): what a request is routed by.
    pub fn router(&self) -> Router {
        self.current.load().router.clone()
    }

    /// The current App.
    pub fn app(&self) -> Arc<App> {
        self.current.load().app.clone()
    }

    /// Start the current App's health probes (and stop any earlier ones); from now on
    /// each new App's probes replace the last one's.
    pub fn start_probes(&self) {
        self.serving
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let app = self.app();
        let next = crate::routing::health::spawn(
            app.routes.clone(),
            app.upstream.clone(),
            app.config.routing.health.clone(),
        );
        let mut probes = self.probes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = std::mem::replace(&mut *probes, next) {
            old.abort();
        }
    }

    /// With Redis: announce this gateway's changes and follow the others' (see
    /// [`sync`]). Once.
    pub fn start_sync(&self) {
        let app = self.app();
        let (Some(spec), Some(limiter)) = (&app.config.governance.redis, &app.governor.shared)
        else {
            return;
        };
        let s = sync::Spread::new(limiter.client(), spec);
        if self.sync.set(s.clone()).is_ok() {
            self.announce_breakers(&app);
            let task = s.follow(self.me.clone());
            *self
                .following
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(task);
        }
    }

    /// `app`'s cooldowns, recoveries and health changes announced to the other gateways
    /// (with Redis).
    fn announce_breakers(&self, app: &App) {
        if let Some(s) = self.sync.get() {
            let s = s.clone();
            app.routes.on_cooldown(Box::new(move |what| {
                s.announce(sync::Change::Breaker(what))
            }));
        }
    }

    /// Tells the other gateways what the admin API changed here.
    pub fn announce(&self, change: sync::Change) {
        if let Some(s) = self.sync.get() {
            s.announce(change);
        }
    }

    /// Serve the models the store holds now (another gateway changed them).
    pub async fn sync_stored(&self) -> Result<Changes, ReloadError> {
        let mut edit = self.edit().await;
        let stored = self.read_store().await?;
        let changes = edit.prepare(stored).await?;
        edit.commit();
        Ok(changes)
    }

    /// Shutdown has begun: mark the App draining, stop the probes, refuse reloads.
    pub async fn close(&self) {
        if let Some(t) = self
            .following
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            t.abort();
        }
        self.app()
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.serving
            .store(false, std::sync::atomic::Ordering::Relaxed);
        if let Some(p) = self
            .probes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            p.abort();
        }
        self.state.lock().await.closed = true;
    }

    /// Read the file again and, if it is valid and changes nothing that needs a
    /// restart, swap to it (see the module doc). The error says why not; the running
    /// config then stays.
    ///
    /// The stored models are read again too (another gateway sharing the database
    /// may have changed them).
    pub async fn reload(&self) -> Result<Changes, ReloadError> {
        let mut state = self.state.lock().await;
        let stored = self.read_store().await?;
        let changes = self.rebuild(&state, &stored).await?;
        state.stored = stored;
        Ok(changes)
    }

    /// Apply the models the store holds (at start-up); `None` when it holds none.
    pub async fn load_stored(&self) -> Result<Option<Changes>, ReloadError> {
        let stored = self.read_store().await?;
        if stored.is_empty() {
            return Ok(None);
        }
        self.set_stored(stored).await.map(Some)
    }

    /// The stored models as `[[models]]` entries; one that no longer maps (a key
    /// this version does not read) is left out, with an error naming it.
    async fn read_store(&self) -> Result<Vec<StoredEntry>, ReloadError> {
        let rows = self.app().models.list_models().await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let entry = serde_json::from_str(&row.body)
                .map_err(|e| {
                    vec![crate::config::Issue {
                        path: String::new(),
                        line: 1,
                        column: 1,
                        message: e.to_string(),
                    }]
                })
                .and_then(|body| crate::config::stored_entry(&body));
            match entry {
                Ok(entry) => out.push(StoredEntry { id: row.id, entry }),
                Err(issues) => {
                    let why: Vec<String> = issues
                        .iter()
                        .map(|i| format!("{}: {}", i.path, i.message))
                        .collect();
                    tracing::error!(id = %row.id, model = %row.model_name, "a stored model is not served: {}", why.join("; "));
                }
            }
        }
        Ok(out)
    }

    /// Start a change of the stored models (the model admin API): holds off every
    /// other reload until the [`Edit`] is committed or dropped.
    pub async fn edit(&self) -> Edit<'_> {
        Edit {
            live: self,
            state: self.state.lock().await,
            staged: None,
        }
    }

    /// Set the stored models (read from the store at start-up) and apply them.
    pub async fn set_stored(&self, stored: Vec<StoredEntry>) -> Result<Changes, ReloadError> {
        let mut edit = self.edit().await;
        let changes = edit.prepare(stored).await?;
        edit.commit();
        Ok(changes)
    }

    async fn rebuild(&self, state: &State, stored: &[StoredEntry]) -> Result<Changes, ReloadError> {
        let (current, changes) = self.build(self.read(state, stored)?).await?;
        self.swap(current);
        Ok(changes)
    }

    /// The file read again with `stored`.
    fn read(&self, state: &State, stored: &[StoredEntry]) -> Result<Reading, ReloadError> {
        if state.closed {
            return Err(ReloadError::Closed);
        }
        let source = state.source.as_ref().ok_or(ReloadError::NoFile)?;
        let reading = source.read(stored)?;
        for i in &reading.ignored {
            tracing::warn!(
                "{}:{}:{}: {}: {} (ignored: --allow-unsupported)",
                source.path.display(),
                i.line,
                i.column,
                i.path,
                i.message
            );
        }
        Ok(reading)
    }

    /// Build the App of `reading` from the current one (not served yet).
    async fn build(&self, reading: Reading) -> Result<(Current, Changes), ReloadError> {
        let old = self.app();
        let config = reading.inspection.config;
        let mut restart = changes::restart_needed(&old.config, &config);
        if old.governor.stores.is_none() {
            let url = |c| crate::governance::database_url(c).ok().flatten();
            if url(&config).is_some() && url(&config) != url(&old.config) {
                restart.push("a database (budgets, the files API, cost tracking or the admin API now need one)");
            }
        }
        if !restart.is_empty() {
            return Err(ReloadError::RestartNeeded(restart));
        }
        let view = serde_json::to_value(&reading.inspection.masked).ok();
        let changes = Changes::between(&old.config, &config, (old.view.as_deref(), view.as_ref()));
        let app = App::reload(&old, config, view).await?;
        let router = (self.make_router)(app.clone(), self.me.clone());
        Ok((Current { app, router }, changes))
    }

    /// Serve `current` from now on.
    fn swap(&self, current: Current) {
        self.announce_breakers(&current.app);
        self.current.store(Arc::new(current));
        if self.serving.load(std::sync::atomic::Ordering::Relaxed) {
            self.start_probes();
        }
    }
}

/// A change of the stored models in progress (see [`Live::edit`]): [`Edit::prepare`]
/// validates the config with the new list and builds its App; [`Edit::commit`] serves
/// it. Dropped uncommitted, it changes nothing.
pub struct Edit<'a> {
    live: &'a Live,
    state: tokio::sync::MutexGuard<'a, State>,
    staged: Option<(Current, Vec<StoredEntry>)>,
}

impl Edit<'_> {
    /// The App served now.
    pub fn app(&self) -> Arc<App> {
        self.live.app()
    }

    /// The stored models in force.
    pub fn stored(&self) -> &[StoredEntry] {
        &self.state.stored
    }

    /// The App of the file with `stored`, built but not served; the error says why
    /// the config with them is refused.
    pub async fn prepare(&mut self, stored: Vec<StoredEntry>) -> Result<Changes, ReloadError> {
        let reading = self.live.read(&self.state, &stored)?;
        let (current, changes) = self.live.build(reading).await?;
        self.staged = Some((current, stored));
        Ok(changes)
    }

    /// Serve what [`Edit::prepare`] built (nothing happens without it).
    pub fn commit(mut self) {
        if let Some((current, stored)) = self.staged.take() {
            self.live.swap(current);
            self.state.stored = stored;
        }
    }
}
