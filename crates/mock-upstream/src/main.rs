//! The `mock-upstream` binary: the mock served standalone, for the benchmark and for tests written
//! in other languages (which drive it through the `/__mock/` control API).
//!
//! `mock-upstream [--host 127.0.0.1] [--port 0] [--require-api-key KEY] [--no-record] [--threads N]`
//!
//! After binding it prints exactly one line, `mock-upstream listening on http://HOST:PORT`, to
//! stdout, then serves until SIGINT or SIGTERM. Nothing is logged per request.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use mock_upstream::{MockOptions, MockUpstream};
use tokio::net::TcpListener;

/// A fake of LLM provider HTTP APIs (OpenAI wire format) with fault injection.
#[derive(Parser, Debug)]
#[command(name = "mock-upstream", version)]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to bind; 0 picks a free one (printed on stdout).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Require `Authorization: Bearer KEY` on provider requests.
    #[arg(long, value_name = "KEY")]
    require_api_key: Option<String>,
    /// Do not record requests (for benchmarks: memory stays flat).
    #[arg(long)]
    no_record: bool,
    /// Worker threads of the tokio runtime (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads.max(1));
    }
    let result = builder
        .build()
        .and_then(|runtime| runtime.block_on(run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mock-upstream: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> std::io::Result<()> {
    let listener = TcpListener::bind((args.host.as_str(), args.port)).await?;
    let opts = MockOptions {
        require_api_key: args.require_api_key,
        record_bodies: !args.no_record,
        port: args.port,
    };
    let mock = MockUpstream::from_listener(listener, opts)?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "mock-upstream listening on http://{}", mock.addr())?;
        stdout.flush()?;
    }
    stop_signal().await?;
    mock.shutdown();
    Ok(())
}

/// Resolves on SIGINT or SIGTERM (Ctrl-C elsewhere than Unix).
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
