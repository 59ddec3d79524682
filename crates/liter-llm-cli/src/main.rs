//! The `liter-llm` binary: a thin shell over `liter-llm-proxy`.
//!
//! `liter-llm api` runs the gateway; `liter-llm check-config` validates a config and
//! prints it resolved, with every secret masked; `liter-llm convert` prints a LiteLLM
//! `config.yaml` as the equivalent `liter-llm-proxy.toml`.
//!
//! `api` reloads its config file on `SIGHUP`, and with `--watch` when the file
//! changes (`reload.rs`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use clap::{Args, Parser, Subcommand, ValueEnum};
use liter_llm_proxy::config::{self, ConfigError, Overrides};
use liter_llm_proxy::reload::Live;
use liter_llm_proxy::App;
use secrecy::SecretString;

mod alloc;
mod image;
mod logging;
mod mask;
mod math;
mod reload;

#[derive(Parser)]
#[command(
    name = "liter-llm",
    version,
    about = "An OpenAI-compatible LLM gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Api(ApiArgs),
    /// Validate a config file and print it resolved, secrets masked.
    CheckConfig(ConfigArgs),
    /// Print a LiteLLM config.yaml as the equivalent liter-llm-proxy.toml.
    Convert(ConvertArgs),
}

#[derive(Args)]
struct ConvertArgs {
    /// The LiteLLM config file (config.yaml).
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

#[derive(Args)]
struct ConfigArgs {
    /// Config file: TOML, or LiteLLM's YAML format (by a .yaml/.yml extension).
    /// Without it, liter-llm-proxy.toml is looked for in the working directory and
    /// then each parent, and then LiteLLM's config.yaml and proxy_config.yaml.
    #[arg(short = 'c', long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Bind address (overrides [server] host).
    #[arg(long)]
    host: Option<String>,
    /// Bind port (overrides [server] port).
    #[arg(short = 'p', long)]
    port: Option<u16>,
    /// Master key (overrides [general] master_key). Defaults to
    /// $LITER_LLM_MASTER_KEY, which then overrides the file's master_key too.
    #[arg(long)]
    master_key: Option<String>,
    /// For a LiteLLM file: start even though it has keys that are not supported yet
    /// (each is logged once as ignored) instead of failing.
    #[arg(long)]
    allow_unsupported: bool,
}

#[derive(Args)]
struct ApiArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Log line format [default: the config's general.log_format (LiteLLM's
    /// json_logs), else text].
    #[arg(long, value_enum, env = "LITER_LLM_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// Debug-level logs from liter-llm itself, as the config's general.debug (LiteLLM's
    /// set_verbose) does (both ignored when RUST_LOG is set).
    #[arg(long)]
    debug: bool,
    /// Reload the config file when it changes (checked every second), as SIGHUP does.
    #[arg(long)]
    watch: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

impl From<config::LogFormat> for LogFormat {
    fn from(f: config::LogFormat) -> Self {
        match f {
            config::LogFormat::Text => LogFormat::Text,
            config::LogFormat::Json => LogFormat::Json,
        }
    }
}

/// The log filter of `--debug` when RUST_LOG is not set: debug lines from the gateway's
/// own crates, info from its dependencies.
const DEBUG_FILTER: &str = "info,liter_llm=debug,liter_llm_proxy=debug";

fn init_logging(format: LogFormat, debug: bool) -> Arc<logging::Logs> {
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let logs = logging::Logs::start();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if debug { DEBUG_FILTER } else { "info" })
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let json = matches!(format, LogFormat::Json);
    // The request lines get their own writer, except on a terminal, where the
    // formatter colours them like every other line.
    let fast = !ansi;
    let is_request = |m: &tracing::Metadata<'_>| m.target() == logging::REQUEST_TARGET;
    let formatter = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(logging::Sink(logs.clone()))
        .with_ansi(ansi);
    let formatter = if json {
        formatter.json().flatten_event(true).boxed()
    } else {
        formatter.compact().boxed()
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(formatter.with_filter(filter_fn(move |m| !(fast && is_request(m)))))
        .with(fast.then(|| {
            logging::RequestLines::new(logs.clone(), json).with_filter(filter_fn(is_request))
        }))
        .init();
    logs
}

/// The file named by `--config`, else the one discovery finds.
fn config_path(args: &ConfigArgs) -> Result<PathBuf, ConfigError> {
    match &args.config {
        Some(p) => Ok(p.clone()),
        None => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            config::litellm::discover(&cwd).ok_or(ConfigError::NotFound { start: cwd })
        }
    }
}

/// The flags, and LITER_LLM_MASTER_KEY as the default of --master-key (an empty flag
/// or variable counts as not given).
fn overrides(args: &ConfigArgs) -> Overrides {
    Overrides {
        host: args.host.clone(),
        port: args.port,
        master_key: args.master_key.clone().map(SecretString::from),
        master_key_env: std::env::var("LITER_LLM_MASTER_KEY")
            .ok()
            .map(SecretString::from),
    }
}

/// Resolve which file to load and load it (a LiteLLM file by its extension), as
/// every reload does later. Runs before logging is set up (the file has the log
/// settings): [`announce`] logs what it found.
fn load(args: &ConfigArgs) -> Result<(config::Source, config::Reading), ConfigError> {
    let source = config::Source {
        path: config_path(args)?,
        overrides: overrides(args),
        allow_unsupported: args.allow_unsupported,
    };
    let reading = source.read(&[])?;
    Ok((source, reading))
}

/// The log settings: the flags (and LITER_LLM_LOG_FORMAT) where given, else the
/// config's `general.log_format` and `general.debug`.
fn log_settings(args: &ApiArgs, cfg: Option<&config::Config>) -> (LogFormat, bool) {
    let format = args
        .log_format
        .or(cfg.map(|c| c.log_format.into()))
        .unwrap_or(LogFormat::Text);
    (format, args.debug || cfg.is_some_and(|c| c.debug))
}

/// Logs which file was loaded, and the unsupported keys a LiteLLM file had, ignored
/// by `--allow-unsupported`.
fn announce(source: &config::Source, reading: &config::Reading) {
    let path = &source.path;
    if source.is_litellm() {
        tracing::info!(config = %path.display(), "config file loaded (LiteLLM format)");
    } else {
        tracing::info!(config = %path.display(), "config file loaded");
    }
    for i in &reading.ignored {
        tracing::warn!(
            "{}:{}:{}: {}: {} (ignored: --allow-unsupported)",
            path.display(),
            i.line,
            i.column,
            i.path,
            i.message
        );
    }
}

fn main() -> ExitCode {
    alloc::configure();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig(args) => check_config(&args),
        Command::Convert(args) => match config::litellm::convert_file(&args.file) {
            Ok(toml) => {
                print!("{toml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("liter-llm: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Api(args) => {
            let loaded = load(&args.config);
            let cfg = loaded.as_ref().ok().map(|(_, r)| &r.inspection.config);
            let (format, debug) = log_settings(&args, cfg);
            let logs = init_logging(format, debug);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .on_thread_park(alloc::on_thread_park)
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("liter-llm: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let code = runtime.block_on(api(args, loaded));
            drop(runtime);
            logs.flush();
            code
        }
    }
}

fn check_config(args: &ConfigArgs) -> ExitCode {
    let inspected = config_path(args).and_then(|path| {
        if config::litellm::is_litellm(&path) {
            let loaded =
                config::litellm::inspect_file(&path, &overrides(args), args.allow_unsupported)?;
            Ok((loaded.value, loaded.ignored, path))
        } else {
            Ok((
                config::inspect_file(&path, &overrides(args))?,
                Vec::new(),
                path,
            ))
        }
    });
    match inspected {
        Ok((inspection, ignored, path)) => {
            println!("# {} is valid", path.display());
            if config::litellm::is_litellm(&path) {
                println!("# (LiteLLM format; shown as its liter-llm-proxy.toml equivalent)");
            }
            for i in &ignored {
                println!(
                    "# ignored (--allow-unsupported): {}:{}:{}: {}: {}",
                    path.display(),
                    i.line,
                    i.column,
                    i.path,
                    i.message
                );
            }
            print!("{}", mask::resolved(&inspection));
            match liter_llm_proxy::pricing::Prices::unpriced_deployments(&inspection.config) {
                Ok(unpriced) => {
                    for m in unpriced {
                        eprintln!(
                            "liter-llm: warning: {m} has no price: cost tracking and budgets count its requests at 0; set input_cost_per_token and output_cost_per_token on its [[models]] entry, or general.pricing_file"
                        );
                    }
                }
                Err(e) => {
                    eprintln!("liter-llm: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("liter-llm: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn api(
    args: ApiArgs,
    loaded: Result<(config::Source, config::Reading), ConfigError>,
) -> ExitCode {
    #[cfg(feature = "heap-stats")]
    liter_llm_proxy::telemetry::set_heap_probe(alloc::live_bytes);
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    tokio::spawn(alloc::sweep(workers));
    let (source, reading) = match loaded {
        Ok(x) => {
            announce(&x.0, &x.1);
            x
        }
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("liter-llm: {e}");
            return ExitCode::FAILURE;
        }
    };
    let path = source.path.clone();
    let view = serde_json::to_value(&reading.inspection.masked).unwrap_or_default();
    let cfg = reading.inspection.config;
    tracing::debug!(
        config = %path.display(),
        models = cfg.models.len(),
        keys = cfg.keys.len(),
        aliases = cfg.credential_aliases.len(),
        master_key = cfg.master_key.is_some(),
        "config loaded"
    );
    let addr = format!("{}:{}", bracket(&cfg.host), cfg.port);
    let app = match App::build(cfg).await {
        Ok(app) => app.with_view(view),
        Err(e) => {
            eprintln!("liter-llm: {e}");
            return ExitCode::FAILURE;
        }
    };
    let live = liter_llm_proxy::server::live(app, Some(source));
    match live.load_stored().await {
        Ok(None) => {}
        Ok(Some(changes)) => tracing::info!("stored models applied: {}", changes.summary()),
        Err(e) => tracing::error!("the stored models are not served: {e}"),
    }
    // Listen for signals before announcing the address, so none is missed.
    let signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("liter-llm: cannot listen for signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("liter-llm: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().map_or(addr, |a| a.to_string());
    let reloads = match reload::spawn(live.clone(), args.watch.then_some(path.clone())) {
        Ok(task) => task,
        Err(e) => {
            eprintln!("liter-llm: cannot listen for SIGHUP: {e}");
            return ExitCode::FAILURE;
        }
    };
    let models = live.app().routes.len();
    tracing::info!(config = %path.display(), models, "liter-llm listening on http://{local}");
    if !tracing::enabled!(tracing::Level::INFO) {
        // Scripts wait for this line; say it even when info logs are off.
        eprintln!("liter-llm listening on http://{local}");
    }
    // Start-up is over. Its garbage (the config's and the pricing table's parsing) was
    // freed on this thread, whose heap no worker's park collects: its free pages go back
    // now; so do start-up's code and the loader's tables, which nothing runs again.
    // After the line above, whose formatting is start-up's code too (the link order's
    // profile, bench/link-order.sh, counts what runs after it as the requests' code).
    alloc::collect();
    let released = image::release();
    tracing::debug!(
        bytes = released,
        "start-up's pages of the binary handed back"
    );
    let code = serve_until_signalled(live, listener, signals).await;
    reloads.abort();
    code
}

/// Serve until the first signal, then drain: in-flight requests may take up to
/// request_timeout to finish; past that (or on a second signal) the process stops
/// without waiting for them.
async fn serve_until_signalled(
    live: Arc<Live>,
    listener: tokio::net::TcpListener,
    mut signals: Signals,
) -> ExitCode {
    let drain_limit = live.app().config.request_timeout + Duration::from_secs(5);
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let (second_tx, second_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        signals.next().await;
        let _ = first_tx.send(());
        signals.next().await;
        let _ = second_tx.send(());
    });
    let draining = Arc::new(Notify::new());
    let begin = draining.clone();
    let serve = liter_llm_proxy::server::serve_live(live, listener, async move {
        let _ = first_rx.await;
        begin.notify_one();
    });
    let forced = async {
        draining.notified().await;
        tokio::select! {
            _ = second_rx => "a second signal",
            () = tokio::time::sleep(drain_limit) => "the drain time limit",
        }
    };
    tokio::select! {
        result = serve => match result {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("liter-llm: server error: {e}");
                ExitCode::FAILURE
            }
        },
        why = forced => {
            tracing::warn!("stopped by {why} before every in-flight request finished");
            ExitCode::FAILURE
        }
    }
}

/// IPv6 literals need brackets in `host:port`.
fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// SIGINT and SIGTERM, listened to from start-up on, so that every delivery is seen
/// exactly once: the first starts the drain, a second one stops at once.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The next SIGINT or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
