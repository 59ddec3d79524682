//! `bench-floor`: the cheapest proxy we can write, used as the floor the gateway is measured against.
//!
//! Every request is forwarded as-is (method, path and query, headers except `Host`, body streamed)
//! through a hyper-util keep-alive pool to `--upstream`, and the response is streamed back. Nothing
//! is parsed. It runs the same multi-thread tokio runtime as the gateway, so pinning both to one
//! core with `taskset` compares like with like.

use std::{convert::Infallible, io::Write, net::SocketAddr, sync::Arc};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use http::{header::HOST, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::net::TcpListener;

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Upstream base URL, e.g. `http://127.0.0.1:8080`; its path, if any, is prefixed to every request.
    #[arg(long)]
    upstream: Uri,
}

type Body = Either<Incoming, Full<Bytes>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (Some(scheme), Some(authority)) = (args.upstream.scheme(), args.upstream.authority())
    else {
        bail!("--upstream must be an absolute http:// URL");
    };
    let prefix = args.upstream.path().trim_end_matches('/');
    let base: Arc<str> = format!("{scheme}://{authority}{prefix}").into();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).build(connector);

    let listener = TcpListener::bind(args.listen).await.context("bind")?;
    println!("bench-floor listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;

    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (client, base) = (client.clone(), base.clone());
        let svc = service_fn(move |req| forward(client.clone(), base.clone(), req));
        tokio::spawn(async move {
            let io = TokioIo::new(stream);
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(io, svc)
                .await;
        });
    }
}

async fn forward(
    client: Client<HttpConnector, Incoming>,
    base: Arc<str>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("{base}{path}").parse::<Uri>() else {
        return Ok(bad_gateway());
    };
    *req.uri_mut() = uri;
    req.headers_mut().remove(HOST);
    match client.request(req).await {
        Ok(resp) => Ok(resp.map(Either::Left)),
        Err(_) => Ok(bad_gateway()),
    }
}

fn bad_gateway() -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from_static(b"bad gateway"))));
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    resp
}
