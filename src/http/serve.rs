//! The HTTP serve loop: accepts TCP connections (HTTPS when a certificate is configured),
//! bounds how many are open at once and how long a client may take to send a request header,
//! and hands each request to the router with the client's address
//! (`ConnectInfo<SocketAddr>`) and whether it came over TLS ([`ClientScheme`]).
//!
//! It must never hold a connection that sends nothing useful: a header that is not complete
//! after `http.header_read_timeout_ms` closes the connection (hyper's header-read timer, which
//! also closes idle keep-alive connections), a TLS handshake gets the same time, and past
//! `http.max_connections` a new connection gets one 503 and is closed.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::problem::ApiError;

/// How the client reached us, as a request extension: set by the serve loop (TLS or not) and
/// replaced by [`super::proxy`] when a trusted reverse proxy says `X-Forwarded-Proto: https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientScheme {
    /// The client's side of the connection is HTTPS.
    pub https: bool,
}

/// What the serve loop enforces.
#[derive(Clone)]
pub struct ServeSettings {
    /// A request header (and a TLS handshake) must arrive within this time.
    pub header_read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// HTTPS when set.
    pub tls: Option<TlsAcceptor>,
}

/// Connections past the limit that are being answered 503 at once; past this many, further
/// ones are closed without an answer.
const REJECTING: usize = 64;

/// Longest time a connection over the limit is kept to answer it.
const REJECT_DEADLINE: Duration = Duration::from_secs(2);

/// After shutdown is asked for, open connections (lesson event streams, say) get this long
/// to finish before they are closed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the TLS certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no PEM item of the right kind.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error("TLS certificate and key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Reads a PEM certificate chain and private key into a TLS acceptor (aws-lc-rs provider;
/// HTTP/1.1 by ALPN).
pub fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let pem_err = |p: &Path, e: &dyn std::fmt::Display| TlsError::Pem {
        path: p.display().to_string(),
        message: e.to_string(),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_err(cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(cert, &e))?;
    if chain.is_empty() {
        return Err(pem_err(cert, &"no CERTIFICATE in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` on `listener` until `shutdown` completes, then waits up to
/// [`SHUTDOWN_GRACE`] for open connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()>,
) {
    let limit = Arc::new(Semaphore::new(settings.max_connections));
    let rejecting = Arc::new(Semaphore::new(REJECTING));
    let graceful = GracefulShutdown::new();
    // Flipped when the grace after shutdown has run out: every connection still open closes.
    let (abort_tx, abort_rx) = tokio::sync::watch::channel(false);
    // HTTP/1.1 only: hyper's header-read timer then runs from a connection's first moment
    // (an HTTP/2-sniffing server waits for a first byte without any deadline), and browsers
    // reach these pages over HTTP/1.1 anyway.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before accept: go on
                    // after a breath rather than spin or stop serving.
                    tracing::warn!("HTTP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            let Ok(slot) = rejecting.clone().try_acquire_owned() else {
                continue; // dropped: closed without an answer
            };
            let tls = settings.tls.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(REJECT_DEADLINE, reject(stream, tls)).await;
                drop(slot);
            });
            continue;
        };
        let router = router.clone();
        let builder = builder.clone();
        let tls = settings.tls.clone();
        let hrt = settings.header_read_timeout;
        let watcher = graceful.watcher();
        let mut abort = abort_rx.clone();
        tokio::spawn(async move {
            let serve_one = async move {
                match tls {
                    None => {
                        let conn = builder
                            .serve_connection(TokioIo::new(stream), service(router, remote, false));
                        let _ = watcher.watch(conn).await;
                    }
                    Some(acceptor) => {
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(hrt, acceptor.accept(stream)).await
                        else {
                            return; // handshake failed or too slow
                        };
                        let conn = builder
                            .serve_connection(TokioIo::new(stream), service(router, remote, true));
                        let _ = watcher.watch(conn).await;
                    }
                }
            };
            tokio::select! {
                _ = serve_one => {}
                _ = abort.wait_for(|a| *a) => {}
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::info!("HTTP connections still open after {SHUTDOWN_GRACE:?}: closed");
            let _ = abort_tx.send(true);
        }
    }
}

type HyperRequest = axum::http::Request<hyper::body::Incoming>;

/// The router as a hyper service for one connection from `remote`.
fn service(
    router: Router,
    remote: SocketAddr,
    https: bool,
) -> impl hyper::service::Service<
    HyperRequest,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send + 'static,
> + Clone {
    hyper::service::service_fn(move |req: HyperRequest| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(remote));
        req.extensions_mut().insert(ClientScheme { https });
        router.clone().oneshot(req)
    })
}

/// Answers every request on a connection over the limit with 503 and closes it.
async fn reject(stream: tokio::net::TcpStream, tls: Option<TlsAcceptor>) {
    match tls {
        None => reject_on(stream).await,
        Some(a) => {
            if let Ok(s) = a.accept(stream).await {
                reject_on(s).await
            }
        }
    }
}

async fn reject_on<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: IO) {
    let svc = hyper::service::service_fn(|_req: HyperRequest| async {
        let mut r = ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too-many-connections",
            "this server has as many HTTP connections open as it allows",
        )
        .with_retry_after(1)
        .into_response();
        r.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        Ok::<_, Infallible>(r)
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(REJECT_DEADLINE)
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), svc)
        .await;
}
