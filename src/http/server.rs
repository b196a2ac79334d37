//! Accepting connections: HTTP/1.1 on each with upgrades (websockets), a client that is slow to
//! send a request's headers, or that keeps an idle connection open, is cut off after the header
//! timeout, and on shutdown every connection finishes the request it is serving and closes.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Pause after a failed accept (out of file descriptors, say) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown`, then lets every open request finish.
/// `header_timeout` bounds how long a connection may take to send a request's headers, and so
/// also how long it may sit idle between requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        while connections.try_join_next().is_some() {}
        // The peer's address, for the self-audit's client IP.
        let service = router
            .clone()
            .map_request(move |mut request: axum::extract::Request| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            })
            .map_request(|request: hyper::Request<hyper::body::Incoming>| {
                request.map(axum::body::Body::new)
            });
        let shutdown = shutdown.clone();
        connections.spawn(serve_connection(
            stream,
            peer,
            TowerToHyperService::new(service),
            header_timeout,
            shutdown,
        ));
    }
    while connections.join_next().await.is_some() {}
}

async fn serve_connection<S>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    service: S,
    header_timeout: Duration,
    shutdown: CancellationToken,
) where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    futures::pin_mut!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            return;
        }
        () = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
    }
    if let Err(e) = connection.await {
        tracing::debug!(%peer, error = %e, "connection ended during shutdown");
    }
}
