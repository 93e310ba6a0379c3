//! The HTTP endpoint: `/metrics` (content-negotiated), `/healthz`, on its own thread with its
//! own small runtime, so a slow scraper never delays draining the ring buffers and a busy
//! session never delays a scrape.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, thread};

use anyhow::{Context as _, Result};
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{ACCEPT, CONTENT_TYPE},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::sinks::prometheus::exposition;

/// A running endpoint; stops with the process.
pub struct MetricsServer {
    pub addr: SocketAddr,
}

/// Binds `addr` now (so a taken port is an error before anything is attached) and serves on a
/// background thread.
pub fn serve(addr: SocketAddr, registry: Arc<Registry>) -> Result<MetricsServer> {
    let std_listener = std::net::TcpListener::bind(addr)
        .map_err(|e| crate::usage!("cannot listen on {addr} for /metrics: {e}"))?;
    std_listener.set_nonblocking(true)?;
    let bound = std_listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("starting the /metrics runtime")?;
    thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = TcpListener::from_std(std_listener) else {
                    eprintln!("profiler: warning: /metrics listener could not start");
                    return;
                };
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let registry = Arc::clone(&registry);
                    tokio::spawn(async move {
                        let service = service_fn(move |req| {
                            let registry = Arc::clone(&registry);
                            async move { Ok::<_, Infallible>(respond(&req, &registry)) }
                        });
                        // A client that hangs up mid-request is its problem, not ours.
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        })
        .context("starting the /metrics thread")?;
    Ok(MetricsServer { addr: bound })
}

fn respond(req: &Request<Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        Response::builder()
            .status(status)
            .header(CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let (content_type, body) = exposition::render(registry, accept);
            reply(StatusCode::OK, content_type, body)
        }
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/" => reply(
            StatusCode::OK,
            "text/plain",
            "profiler: metrics at /metrics, health at /healthz\n".into(),
        ),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}
