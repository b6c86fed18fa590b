//! classrelay: live lessons from hub schools to paired rural classrooms.
//!
//! A WebRTC SFU on str0m with WHIP/WHEP signalling (this crate's media path), plus the school
//! side that builds on it (organisations, timetables, lessons and who may join them).
//! [`Server`] wires the parts; the `classrelay` binary is a thin CLI around it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod auth;
pub mod config;
pub mod datadir;
pub mod http;
pub mod ids;
pub mod media;
pub mod metrics;
pub mod observe;
pub mod problem;
pub mod record;
pub mod school;
pub mod sfu;
pub mod signal;
pub mod store;
pub mod time;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use config::Config;

use auth::{Grant, TokenKeys};
use http::AppState;
use metrics::Metrics;
use sfu::Sfu;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Config rejected.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    /// The TLS certificate or key (`http.tls_cert`, `http.tls_key`) could not be used.
    #[error(transparent)]
    Tls(#[from] http::serve::TlsError),
    /// A socket or the data directory failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

/// A running server: HTTP on a bound address, media workers on their UDP sockets.
pub struct Server {
    http_addr: SocketAddr,
    state: Arc<AppState>,
    secret_generated: bool,
    first_admin: Option<(String, String)>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Starts everything from `config`. Must be called inside a tokio runtime.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        Self::start_with_clock(config, Arc::new(crate::time::SystemClock::default())).await
    }

    /// Starts with a given clock (tests drive lesson times with a [`crate::time::ManualClock`]).
    pub async fn start_with_clock(
        config: Config,
        clock: Arc<dyn crate::time::Clock>,
    ) -> Result<Server, StartError> {
        let Prepared {
            keys,
            secret_generated,
            store,
            first_admin,
        } = prepare(&config, clock.as_ref()).await?;
        let metrics = Metrics::new();
        let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
        let sfu = Sfu::start(
            &sfu::SfuSettings {
                workers: config.worker_count(),
                bind: config.media.bind_ip,
                port: config.media.udp_port,
                announce: config.announced_ip(),
                keyframe_interval: config.keyframe_interval(),
                disconnect_grace: Duration::from_millis(config.media.disconnect_grace_ms),
                direct_srtp: config.media.direct_srtp,
                downlink_adaptation: config.media.downlink_adaptation,
                spread_after: config.media.spread_after,
                udp_gso: config.media.udp_gso,
                pipe_backlog: config.media.pipe_backlog,
                fanout_chunk: config.media.fanout_chunk,
                connect_timeout: Duration::from_millis(config.media.connect_timeout_ms),
                publish_cap: sfu::limit::PublishCap::new(
                    config.media.max_publish_kbps,
                    config.media.max_publish_pps,
                ),
            },
            metrics.clone(),
            events_tx,
        )
        .map_err(io_err(format!(
            "binding media UDP on {}:{}",
            config.media.bind_ip, config.media.udp_port
        )))?;
        let tls = match (&config.http.tls_cert, &config.http.tls_key) {
            (Some(cert), Some(key)) => Some(http::serve::load_tls(cert, key)?),
            _ => None,
        };
        let serve_settings = http::serve::ServeSettings {
            header_read_timeout: Duration::from_millis(config.http.header_read_timeout_ms),
            max_connections: config.http.max_connections,
            tls,
        };
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .map_err(io_err(format!("binding HTTP on {}", config.http.listen)))?;
        let http_addr = listener
            .local_addr()
            .map_err(io_err("reading the HTTP address"))?;
        let state = Arc::new(AppState::new(config, keys, sfu, metrics, store, clock));
        // Recording: the capture writer thread and the recorder (before the scheduler's bells).
        school::recording::start(&state.school);
        // Recovery: recordings a crash left open or unprocessed become playable files.
        let cut = school::recording_files::recover(&state.school).await;
        // Lessons live at the restart are recorded again, as a new capture (issue 20).
        school::recording::resume(&state.school, &cut).await;
        // Exports: jobs a restart interrupted are queued again, then run one at a time.
        school::exports::spawn(&state.school);
        // S-T drafts: jobs a restart interrupted run again; new ones run off the request.
        observe::stdraft_job::spawn(&state.school);
        tokio::spawn(school::scheduler::run(Arc::downgrade(&state.school)));
        tokio::spawn(school::quality::run(Arc::downgrade(&state.school)));
        // Sessions end on the media side too (ICE failure, timeouts): forget them here.
        let weak = Arc::downgrade(&state.media);
        tokio::spawn(async move {
            while let Some(ev) = events_rx.recv().await {
                let Some(media) = weak.upgrade() else { break };
                match ev {
                    sfu::SfuEvent::PeerGone { session } => media.peer_gone(&session),
                    sfu::SfuEvent::WeakNetwork {
                        session,
                        audio_only,
                    } => media.weak_network(&session, audio_only),
                    sfu::SfuEvent::PeerConnected { .. } => {}
                    sfu::SfuEvent::LinkReport {
                        session,
                        part,
                        report,
                        last,
                    } => media.link_report(&session, part, report, last),
                }
            }
        });
        let router = http::app(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(http::serve::serve(
            listener,
            router,
            serve_settings,
            async move {
                let _ = rx.await;
            },
        ));
        Ok(Server {
            http_addr,
            state,
            secret_generated,
            first_admin,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The server without a socket, for driving [`Server::app`] in-process with
    /// `tower::ServiceExt::oneshot`: the database opened and migrated, the first admin made,
    /// the lesson scheduler running, and an SFU without workers, so nothing binds TCP or UDP
    /// and a WHIP/WHEP offer that gets as far as the media is refused (503 `overloaded`).
    /// Its [`Server::http_addr`] is the unspecified address. Must be called inside a tokio
    /// runtime.
    pub async fn in_process(
        config: Config,
        clock: Arc<dyn crate::time::Clock>,
    ) -> Result<Server, StartError> {
        let p = prepare(&config, clock.as_ref()).await?;
        let sfu = Sfu::without_workers().map_err(io_err("making the DTLS certificate"))?;
        let state = Arc::new(AppState::new(
            config,
            p.keys,
            sfu,
            Metrics::new(),
            p.store,
            clock,
        ));
        tokio::spawn(school::scheduler::run(Arc::downgrade(&state.school)));
        // S-T drafts are background jobs here too (the API tests drive them in-process).
        observe::stdraft_job::spawn(&state.school);
        Ok(Server {
            http_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            state,
            secret_generated: p.secret_generated,
            first_admin: p.first_admin,
            shutdown: None,
            task: None,
        })
    }

    /// The router over this server's state (what [`Server::start`] serves).
    pub fn app(&self) -> axum::Router {
        http::app(self.state.clone())
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// `http://addr` (`https://` with TLS on), or the configured public URL.
    pub fn base_url(&self) -> String {
        let scheme = if self.state.config.http.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        self.state
            .config
            .http
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{}", self.http_addr))
    }

    /// The bound UDP address of each media worker.
    pub fn media_addrs(&self) -> Vec<SocketAddr> {
        (0..self.state.media.sfu.len())
            .map(|i| self.state.media.sfu.worker(i).local_addr)
            .collect()
    }

    /// Peers counted against `media.max_peers` (placed, being added or live).
    pub fn peer_count(&self) -> usize {
        self.state.media.sfu.peers()
    }

    /// Peers placed on each media worker (see `Sfu::place`).
    pub fn worker_loads(&self) -> Vec<usize> {
        self.state.media.sfu.loads()
    }

    /// Whether the signing secret was generated by this start.
    pub fn secret_generated(&self) -> bool {
        self.secret_generated
    }

    /// The admin login made by this start, when the database had no admin: (username,
    /// password). The password is also written to `<data.dir>/admin-password`.
    pub fn first_admin(&self) -> Option<&(String, String)> {
        self.first_admin.as_ref()
    }

    /// The shared state (store, clock, live lessons), for tests and tools.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Mints a token granting `grant` in `room` for `ttl`.
    pub fn mint_token(&self, room: &str, grant: Grant, ttl: Duration) -> String {
        let sub = match grant {
            Grant::Publish => "publisher",
            Grant::Subscribe => "viewer",
        };
        self.state.keys.mint(sub, room, &[grant], ttl)
    }

    /// The metrics of this server.
    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    /// Waits until the HTTP server ends (Ctrl-C handling is the caller's).
    pub async fn wait(mut self) {
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Stops HTTP, then the media workers (their threads joined on a blocking thread, not
    /// left to whichever runtime thread drops the last `AppState`), then closes the
    /// database. The UDP ports are free when this returns, even while someone still holds
    /// [`Server::state`].
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        let state = self.state.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || state.media.sfu.stop()).await {
            tracing::error!("stopping the media workers: {e}");
        }
        school::recording::shutdown(&self.state.school).await;
        self.state.school.store.close().await;
    }
}

/// What every start does before the media and HTTP: the checked config's data directory,
/// signing keys, the migrated database and its first admin.
struct Prepared {
    keys: TokenKeys,
    secret_generated: bool,
    store: store::Store,
    first_admin: Option<(String, String)>,
}

async fn prepare(config: &Config, clock: &dyn crate::time::Clock) -> Result<Prepared, StartError> {
    config.validate()?;
    datadir::create_dir(&config.data.dir)
        .map_err(io_err(format!("creating {}", config.data.dir.display())))?;
    let (secret, secret_generated) =
        auth::load_or_create_secret(&config.auth.secret, &config.data.dir)
            .map_err(io_err("reading or creating the signing secret"))?;
    let keys = TokenKeys::new(&secret);
    let store =
        store::Store::open(&config.database.url, &config.data.dir.join("classrelay.db")).await?;
    store.migrate().await?;
    observe::store::seed_default_rubric(&store, clock.now()).await?;
    let first_admin = create_first_admin(&store, &config.data.dir, clock.now()).await?;
    Ok(Prepared {
        keys,
        secret_generated,
        store,
        first_admin,
    })
}

/// On a database without an admin, creates `admin` with a random password written to
/// `<dir>/admin-password` (created 0600) and returns the login. On one with an admin, removes
/// that file if it no longer holds the admin's password.
async fn create_first_admin(
    store: &store::Store,
    dir: &std::path::Path,
    now: i64,
) -> Result<Option<(String, String)>, StartError> {
    use auth::first_admin;
    if auth::people::admin_exists(store).await? {
        first_admin::forget_if_stale(store, dir).await?;
        return Ok(None);
    }
    let password = first_admin::write_new_password(dir).map_err(io_err(format!(
        "writing {}",
        first_admin::password_file(dir).display()
    )))?;
    auth::people::create_user(
        store,
        &auth::people::NewUser {
            username: first_admin::USERNAME.into(),
            display_name: "管理员 Administrator".into(),
            role: auth::people::Role::Admin,
            password: password.clone(),
            school_id: None,
            teacher_id: None,
            scope: Some(auth::scope::Level::Global),
            region_id: None,
        },
        now,
    )
    .await?;
    Ok(Some((first_admin::USERNAME.into(), password)))
}
