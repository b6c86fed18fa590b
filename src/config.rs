//! Typed configuration: embedded defaults, then `config/classrelay.toml` (or a file named on the
//! command line), then `CLASSRELAY_*` environment overrides.
//!
//! Every key has a default, so `classrelay serve` runs with no file at all. Unknown keys are
//! rejected by name, so a typo in a school's config file is an error at start, not a silent no-op.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The embedded default configuration file (also shipped as `config/classrelay.toml`).
pub const DEFAULT_TOML: &str = include_str!("../config/classrelay.toml");

/// A configuration problem, naming the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML did not parse or a key is unknown or has the wrong type.
    #[error("invalid config {origin}: {message}")]
    Parse {
        /// Which file or variable.
        origin: String,
        /// What the parser said (names the key).
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("invalid value for `{key}`: {message}")]
    Value {
        /// The dotted key.
        key: String,
        /// Why.
        message: String,
    },
}

/// The shortest signing secret accepted, configured (`auth.secret`) or read from
/// `<data.dir>/secret`: HS256 keys shorter than its 32-byte output are guessable offline.
pub const MIN_SECRET_BYTES: usize = 32;

/// Parses "10.0.0.0/8", "::1/128" or a bare address (a /32 or /128 net).
pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HTTP signalling and pages.
    pub http: HttpConfig,
    /// The media plane (UDP workers).
    pub media: MediaConfig,
    /// Tokens and secrets.
    pub auth: AuthConfig,
    /// Where state lives.
    pub data: DataConfig,
    /// The database of the school side.
    pub database: DatabaseConfig,
    /// Timetable and lesson rules.
    pub school: SchoolConfig,
    /// STUN/TURN servers handed to clients in `Link: rel="ice-server"`.
    #[serde(default)]
    pub ice_servers: Vec<IceServer>,
    /// TURN servers whose short-lived credentials classrelay mints (coturn `use-auth-secret`).
    #[serde(default)]
    pub turn: TurnConfig,
    /// Which rooms are recorded, and where captures go.
    #[serde(default)]
    pub recording: RecordingConfig,
}

/// Which rooms are recorded (`[recording] rooms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordRooms {
    /// Timetable lessons of schools whose `record_lessons` is on (the default).
    #[default]
    Lessons,
    /// Every room, plain token rooms too.
    All,
    /// Nothing is recorded unless asked for through the API.
    None,
}

/// Recording settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// Which rooms are recorded.
    #[serde(default)]
    pub rooms: RecordRooms,
    /// Where recordings live (`<data.dir>/recordings` when empty).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Days a lesson's recording is kept after it ends, for schools that set no
    /// `retention_days` of their own (and plain rooms); 0 keeps them.
    #[serde(default)]
    pub retention_days: u32,
}

impl RecordingConfig {
    /// The recordings directory for data directory `data`.
    pub fn dir_in(&self, data: &std::path::Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data.join("recordings"))
    }
}

/// HTTP settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Largest accepted request body (SDP offers), in bytes.
    pub max_body_bytes: usize,
    /// Origins allowed by CORS; `["*"]` allows any.
    pub cors_origins: Vec<String>,
    /// Public base URL used in printed links (defaults to `http://{listen}`). Also an origin
    /// that cookie-authenticated API calls may come from; an `https://` URL makes the session
    /// cookie `Secure`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// A connection must send a request's whole header within this many milliseconds (and an
    /// idle keep-alive connection is closed after it), or it is closed.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// A request (its body included) must be answered within this many milliseconds, or it
    /// gets 408 `request-timeout`. Lesson event streams are exempt.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Most open HTTP connections; further connections get 503 `too-many-connections`.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// PEM certificate chain: with `tls_key`, the server speaks HTTPS only.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Reverse proxies (IPs or CIDR nets, e.g. "127.0.0.1/32") whose `X-Forwarded-For` and
    /// `X-Forwarded-Proto` are believed. Empty: none.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Bearer token `/metrics` requires; empty: `/metrics` is open.
    #[serde(default)]
    pub metrics_token: String,
}

fn default_header_read_timeout_ms() -> u64 {
    10_000
}

fn default_request_timeout_ms() -> u64 {
    30_000
}

fn default_max_connections() -> usize {
    4096
}

/// Media plane settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// IP the UDP sockets bind.
    pub bind_ip: IpAddr,
    /// First UDP port; worker `i` binds `udp_port + i` (0 = any free port).
    pub udp_port: u16,
    /// IP announced in ICE candidates (defaults to `bind_ip`, which must then not be 0.0.0.0).
    #[serde(default)]
    pub public_ip: Option<IpAddr>,
    /// Worker threads, each with its own UDP socket (0 = number of cores).
    pub workers: usize,
    /// A room's viewers stay on its home worker (where its publishers are) until that worker
    /// holds this many peers; later viewers go to the least loaded worker, and the room's
    /// media is piped there, so every core fans out a big broadcast (0: spread from the
    /// first viewer).
    #[serde(default = "default_spread_after")]
    pub spread_after: usize,
    /// Most peers (publishers + subscribers) one server accepts before answering 503.
    pub max_peers: usize,
    /// Minimum spacing of keyframe requests sent to one publisher track, in milliseconds.
    pub keyframe_interval_ms: u64,
    /// How long a peer may stay disconnected (awaiting an ICE restart) before it is dropped.
    pub disconnect_grace_ms: u64,
    /// Whether subscribers' media is SRTP-protected by the worker's fast path (see
    /// `sfu::egress`) rather than sent through str0m.
    #[serde(default = "default_true")]
    pub direct_srtp: bool,
    /// Whether each viewer's simulcast layers follow its downlink estimate (from its receiver
    /// reports; `sfu/core/bwe.rs`, `adapt.rs`): down within about a second of a link
    /// dropping, audio only below the lowest layer. false: every viewer gets the best layer.
    #[serde(default = "default_true")]
    pub downlink_adaptation: bool,
    /// Whether a viewer's run of datagrams leaves as one UDP GSO send (segmented by the
    /// kernel or the NIC), several viewers' runs per `sendmmsg`. false: one datagram per
    /// message and no padding to even out a frame's packets, for a NIC or driver whose
    /// segmentation offload misbehaves. Without kernel support it turns itself off.
    #[serde(default = "default_true")]
    pub udp_gso: bool,
    /// Packets a worker may leave waiting for another worker it pipes a room to; past that
    /// it drops them (and holds that video layer back until its next keyframe) rather than
    /// let memory grow behind a worker that does not keep up.
    #[serde(default = "default_pipe_backlog")]
    pub pipe_backlog: usize,
    /// Viewers a worker serves between two looks for the rest of a video frame whose first
    /// part it is sending (a look is one non-blocking read): what arrived meanwhile joins
    /// the fan-out instead of waiting for its end. At least 1.
    #[serde(default = "default_fanout_chunk")]
    pub fanout_chunk: usize,
    /// Most WHIP/WHEP sessions (live or being set up) one principal holds over all rooms:
    /// a lesson participant ("c:12", "t:3", "u:7"), or a token's `sub` in its room. A
    /// lesson's hub teacher may hold one more per site of the lesson (a view of each class).
    /// Past it: 429 `too-many-sessions`.
    #[serde(default = "default_max_sessions_per_principal")]
    pub max_sessions_per_principal: usize,
    /// Most WHIP/WHEP sessions one token holds (plus the hub teacher's one per site), so a
    /// leaked token cannot take all of its principal's sessions. Past it: 429.
    #[serde(default = "default_max_sessions_per_token")]
    pub max_sessions_per_token: usize,
    /// Most of `max_peers` one room (a lesson) may hold, in percent, so that one lesson
    /// cannot crowd every other out. Past it: 503 `room-full`. 100: no share.
    #[serde(default = "default_max_room_share_percent")]
    pub max_room_share_percent: u8,
    /// Milliseconds a peer may take from its offer to connected (ICE and DTLS done) before it
    /// is dropped and its place freed. 1000 to 120000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Most media one publisher may send in, kbit/s of RTP payload (bursts up to one
    /// second's worth pass); the excess is dropped before forwarding. At least 100.
    #[serde(default = "default_max_publish_kbps")]
    pub max_publish_kbps: u64,
    /// Most RTP packets per second one publisher may send in (same burst and drops). At
    /// least 50.
    #[serde(default = "default_max_publish_pps")]
    pub max_publish_pps: u64,
}

fn default_max_room_share_percent() -> u8 {
    50
}

fn default_max_sessions_per_principal() -> usize {
    16
}

fn default_max_sessions_per_token() -> usize {
    8
}

fn default_connect_timeout_ms() -> u64 {
    crate::sfu::worker::CONNECT_TIMEOUT.as_millis() as u64
}

fn default_max_publish_kbps() -> u64 {
    10_000
}

fn default_max_publish_pps() -> u64 {
    2_500
}

fn default_fanout_chunk() -> usize {
    crate::sfu::worker::FAN_OUT_CHUNK
}

fn default_pipe_backlog() -> usize {
    crate::sfu::pipe::BACKLOG
}

fn default_spread_after() -> usize {
    50
}

fn default_true() -> bool {
    true
}

/// Auth settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC secret for tokens, at least 32 bytes. Empty: generated on first start and kept in
    /// `data.dir/secret`.
    pub secret: String,
    /// Default lifetime of tokens printed by `classrelay token`, e.g. "2h".
    pub default_ttl: String,
    /// Login attempts one client address may make at once (then one per
    /// `login_address_interval`); more get 429. At least 1.
    #[serde(default = "default_login_address_burst")]
    pub login_address_burst: u32,
    /// One more login attempt per address is allowed after each such interval, e.g. "1s".
    #[serde(default = "default_login_address_interval")]
    pub login_address_interval: String,
    /// Failed logins in a row for one username before it backs off. At least 1.
    #[serde(default = "default_login_username_burst")]
    pub login_username_burst: u32,
    /// The first backoff wait of a username, doubling with each further failure, e.g. "2s".
    #[serde(default = "default_login_username_backoff")]
    pub login_username_backoff: String,
    /// The longest backoff wait; a username idle this long starts afresh, e.g. "10m".
    #[serde(default = "default_login_username_backoff_max")]
    pub login_username_backoff_max: String,
    /// Most usernames (and client addresses, between prunes) the login limits remember.
    #[serde(default = "default_login_tracked_max")]
    pub login_tracked_max: usize,
}

fn default_login_address_burst() -> u32 {
    30
}

fn default_login_address_interval() -> String {
    "1s".into()
}

fn default_login_username_burst() -> u32 {
    5
}

fn default_login_username_backoff() -> String {
    "2s".into()
}

fn default_login_username_backoff_max() -> String {
    "10m".into()
}

fn default_login_tracked_max() -> usize {
    100_000
}

/// Data locations.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Directory for the database, recordings and the generated secret.
    pub dir: PathBuf,
}

/// Database settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` for PostgreSQL; empty for the SQLite file `data.dir/classrelay.db`.
    pub url: String,
}

/// Timetable and lesson rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchoolConfig {
    /// Local time offset from UTC, "+08:00".
    pub utc_offset: String,
    /// Minutes before the bell a lesson's room opens.
    pub open_before_min: u32,
    /// Minutes after the slot's end a lesson stays live.
    pub grace_min: u32,
    /// Login session lifetime, e.g. "12h".
    pub session_ttl: String,
    /// Seconds between link-quality checks of running lessons (0: off).
    pub quality_interval_sec: u32,
    /// At most this many lessons per hub teacher per day (ad hoc creation is refused beyond
    /// it with 429).
    #[serde(default = "default_lessons_per_day")]
    pub max_lessons_per_teacher_day: u32,
}

fn default_lessons_per_day() -> u32 {
    16
}

/// One STUN or TURN server for clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:` or `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(default)]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default)]
    pub credential: Option<String>,
}

/// A TURN service sharing a secret with classrelay (the TURN REST API scheme coturn's
/// `use-auth-secret` / `static-auth-secret` implements): every authenticated WHIP/WHEP caller
/// gets a username `<expiry>:<principal>` and its HMAC-SHA1 under the secret, valid for `ttl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnConfig {
    /// The shared secret (coturn's `static-auth-secret`); empty: none (see `secret_file`).
    #[serde(default)]
    pub secret: String,
    /// A file holding the shared secret (surrounding whitespace ignored), instead of `secret`.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// `turn:`/`turns:` URLs of the service; empty: no minted credentials.
    #[serde(default)]
    pub urls: Vec<String>,
    /// How long a minted credential is valid (a lesson's length or more).
    #[serde(default = "default_turn_ttl")]
    pub ttl: String,
}

fn default_turn_ttl() -> String {
    "6h".into()
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            secret: String::new(),
            secret_file: None,
            urls: Vec::new(),
            ttl: default_turn_ttl(),
        }
    }
}

/// The shortest TURN shared secret accepted: it is an HMAC key guessable offline from one
/// minted credential if short.
pub const MIN_TURN_SECRET_BYTES: usize = 16;

/// The longest `turn.ttl` accepted: a leaked credential stays usable for this long at most.
pub const MAX_TURN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

impl TurnConfig {
    /// Whether credentials are minted (URLs configured).
    pub fn enabled(&self) -> bool {
        !self.urls.is_empty()
    }

    /// The shared secret, read from `secret_file` when set. `None` when TURN is off.
    pub fn secret_bytes(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        if !self.enabled() {
            return Ok(None);
        }
        let bad = |key: &str, message: String| ConfigError::Value {
            key: format!("turn.{key}"),
            message,
        };
        let (key, secret) = match (&self.secret_file, self.secret.is_empty()) {
            (Some(_), false) => {
                return Err(bad(
                    "secret_file",
                    "set secret or secret_file, not both".into(),
                ))
            }
            (None, true) => {
                return Err(bad(
                    "secret",
                    "turn.urls is set: the shared secret (secret or secret_file) is needed".into(),
                ))
            }
            (None, false) => ("secret", self.secret.as_bytes().to_vec()),
            (Some(path), true) => {
                let text = std::fs::read(path).map_err(|e| {
                    bad(
                        "secret_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let text = String::from_utf8(text).map_err(|_| {
                    bad(
                        "secret_file",
                        format!("{} is not UTF-8 text", path.display()),
                    )
                })?;
                ("secret_file", text.trim().as_bytes().to_vec())
            }
        };
        if secret.len() < MIN_TURN_SECRET_BYTES {
            return Err(bad(
                key,
                format!(
                    "is {} bytes; the TURN shared secret needs at least {MIN_TURN_SECRET_BYTES}",
                    secret.len()
                ),
            ));
        }
        Ok(Some(secret))
    }

    /// The credential lifetime.
    pub fn ttl(&self) -> Result<Duration, ConfigError> {
        let bad = |message: String| ConfigError::Value {
            key: "turn.ttl".into(),
            message,
        };
        let d = parse_duration(&self.ttl).map_err(bad)?;
        if d < Duration::from_secs(60) || d > MAX_TURN_TTL {
            return Err(bad(format!(
                "must be between 1 minute and {}",
                humantime::format_duration(MAX_TURN_TTL)
            )));
        }
        Ok(d)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.ttl()?;
        if !self.enabled() && (!self.secret.is_empty() || self.secret_file.is_some()) {
            return Err(ConfigError::Value {
                key: "turn.urls".into(),
                message: "a TURN secret is set but no turn: or turns: URL to hand out".into(),
            });
        }
        for u in &self.urls {
            if !(u.starts_with("turn:") || u.starts_with("turns:")) {
                return Err(ConfigError::Value {
                    key: "turn.urls".into(),
                    message: format!("`{u}` must start with turn: or turns:"),
                });
            }
        }
        self.secret_bytes()?;
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        // The embedded file is checked by a unit test, so parsing it cannot fail at run time.
        toml::from_str(DEFAULT_TOML).expect("embedded default config parses (unit-tested)")
    }
}

impl Config {
    /// Loads defaults, then the file (if any), then `CLASSRELAY_*` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut value: toml::Table =
            toml::from_str(DEFAULT_TOML).expect("embedded default config parses (unit-tested)");
        let default_path = Path::new("config/classrelay.toml");
        let chosen = match path {
            Some(p) => Some(p.to_path_buf()),
            None if default_path.exists() => Some(default_path.to_path_buf()),
            None => None,
        };
        let origin = chosen
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(defaults and environment)".into());
        if let Some(p) = chosen {
            let text = std::fs::read_to_string(&p).map_err(|source| ConfigError::Read {
                path: p.clone(),
                source,
            })?;
            let file: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                origin: p.display().to_string(),
                message: e.to_string(),
            })?;
            merge(&mut value, file);
        }
        let env: Vec<(String, String)> = std::env::vars().collect();
        apply_env(&mut value, &env)?;
        let cfg: Config = value
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                origin,
                message: e.to_string(),
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses one TOML text over the defaults, without the environment (for `check-config`).
    pub fn from_toml_over_defaults(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut value: toml::Table =
            toml::from_str(DEFAULT_TOML).expect("embedded default config parses (unit-tested)");
        let file: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        merge(&mut value, file);
        let cfg: Config = value
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                origin: origin.into(),
                message: e.to_string(),
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// A configuration for tests: loopback, ephemeral ports, data in `dir`.
    pub fn for_tests(dir: &Path) -> Config {
        let mut c = Config::default();
        c.http.listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        c.media.bind_ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        c.media.udp_port = 0;
        c.media.workers = 1;
        c.data.dir = dir.to_path_buf();
        c.auth.secret = "test-secret-test-secret-test-secret".into();
        // Link-quality events within a second or two of the media stats (no test sleeps 5 s).
        c.school.quality_interval_sec = 1;
        // Tests stand many simulated peers on one minted token; tests of the session caps
        // (tests/session_limits.rs) set them back.
        c.media.max_sessions_per_principal = c.media.max_peers;
        c.media.max_sessions_per_token = c.media.max_peers;
        c
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.media.public_ip.is_none() && self.media.bind_ip.is_unspecified() {
            return Err(ConfigError::Value {
                key: "media.public_ip".into(),
                message: "must be set when media.bind_ip is 0.0.0.0 or ::".into(),
            });
        }
        if self.media.fanout_chunk == 0 {
            return Err(ConfigError::Value {
                key: "media.fanout_chunk".into(),
                message: "must be at least 1".into(),
            });
        }
        if !(1000..=120_000).contains(&self.media.connect_timeout_ms) {
            return Err(ConfigError::Value {
                key: "media.connect_timeout_ms".into(),
                message: "must be between 1000 and 120000".into(),
            });
        }
        if self.media.max_publish_kbps < 100 {
            return Err(ConfigError::Value {
                key: "media.max_publish_kbps".into(),
                message: "must be at least 100".into(),
            });
        }
        if self.media.max_publish_pps < 50 {
            return Err(ConfigError::Value {
                key: "media.max_publish_pps".into(),
                message: "must be at least 50".into(),
            });
        }
        if self.http.max_body_bytes < 1024 {
            return Err(ConfigError::Value {
                key: "http.max_body_bytes".into(),
                message: "must be at least 1024".into(),
            });
        }
        self.validate_http()?;
        if crate::time::parse_offset(&self.school.utc_offset).is_none() {
            return Err(ConfigError::Value {
                key: "school.utc_offset".into(),
                message: format!("`{}` is not an offset like +08:00", self.school.utc_offset),
            });
        }
        if let Err(e) = parse_duration(&self.school.session_ttl) {
            return Err(ConfigError::Value {
                key: "school.session_ttl".into(),
                message: e,
            });
        }
        if self.media.max_peers == 0 {
            return Err(ConfigError::Value {
                key: "media.max_peers".into(),
                message: "must be at least 1".into(),
            });
        }
        let secret_len = self.auth.secret.len();
        if secret_len > 0 && secret_len < MIN_SECRET_BYTES {
            return Err(ConfigError::Value {
                key: "auth.secret".into(),
                message: format!(
                    "is {secret_len} bytes; a signing secret needs at least {} (or leave it \
                     empty to have one generated in data.dir/secret)",
                    MIN_SECRET_BYTES
                ),
            });
        }
        for (key, v) in [
            (
                "media.max_sessions_per_principal",
                self.media.max_sessions_per_principal,
            ),
            (
                "media.max_sessions_per_token",
                self.media.max_sessions_per_token,
            ),
        ] {
            if v == 0 {
                return Err(ConfigError::Value {
                    key: key.into(),
                    message: "must be at least 1".into(),
                });
            }
        }
        if !(1..=100).contains(&self.media.max_room_share_percent) {
            return Err(ConfigError::Value {
                key: "media.max_room_share_percent".into(),
                message: "must be 1 to 100".into(),
            });
        }
        parse_duration(&self.auth.default_ttl).map_err(|message| ConfigError::Value {
            key: "auth.default_ttl".into(),
            message,
        })?;
        self.validate_login_limits()?;
        for (i, s) in self.ice_servers.iter().enumerate() {
            if s.urls.is_empty()
                || s.urls.iter().any(|u| {
                    !(u.starts_with("stun:") || u.starts_with("turn:") || u.starts_with("turns:"))
                })
            {
                return Err(ConfigError::Value {
                    key: format!("ice_servers[{i}].urls"),
                    message: "each URL must start with stun:, turn: or turns:".into(),
                });
            }
        }
        self.turn.validate()?;
        Ok(())
    }

    fn validate_login_limits(&self) -> Result<(), ConfigError> {
        let a = &self.auth;
        let bad = |key: &str, message: String| ConfigError::Value {
            key: format!("auth.{key}"),
            message,
        };
        let positive = |key: &str, v: &str| match parse_duration(v) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(bad(key, "must be longer than zero".into())),
            Err(e) => Err(bad(key, e)),
        };
        if a.login_address_burst == 0 {
            return Err(bad("login_address_burst", "must be at least 1".into()));
        }
        if a.login_username_burst == 0 {
            return Err(bad("login_username_burst", "must be at least 1".into()));
        }
        if a.login_tracked_max < 100 {
            return Err(bad("login_tracked_max", "must be at least 100".into()));
        }
        positive("login_address_interval", &a.login_address_interval)?;
        let first = positive("login_username_backoff", &a.login_username_backoff)?;
        let max = positive("login_username_backoff_max", &a.login_username_backoff_max)?;
        if max < first {
            return Err(bad(
                "login_username_backoff_max",
                "must not be shorter than auth.login_username_backoff".into(),
            ));
        }
        Ok(())
    }

    fn validate_http(&self) -> Result<(), ConfigError> {
        let h = &self.http;
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Value {
                key: format!("http.{key}"),
                message: message.into(),
            })
        };
        if h.header_read_timeout_ms == 0 {
            return bad("header_read_timeout_ms", "must be at least 1");
        }
        if h.request_timeout_ms == 0 {
            return bad("request_timeout_ms", "must be at least 1");
        }
        if h.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if h.tls_cert.is_some() != h.tls_key.is_some() {
            return bad("tls_cert", "tls_cert and tls_key go together");
        }
        for p in &h.trusted_proxies {
            if parse_net(p).is_none() {
                return bad(
                    "trusted_proxies",
                    &format!("`{p}` is not an IP address or CIDR net"),
                );
            }
        }
        if let Some(u) = &h.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return bad("public_url", "must start with http:// or https://");
            }
        }
        Ok(())
    }

    /// The IP put in ICE candidates.
    pub fn announced_ip(&self) -> IpAddr {
        self.media.public_ip.unwrap_or(self.media.bind_ip)
    }

    /// Number of media workers after resolving 0 = cores.
    pub fn worker_count(&self) -> usize {
        if self.media.workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            self.media.workers
        }
    }

    /// Keyframe request spacing.
    pub fn keyframe_interval(&self) -> Duration {
        Duration::from_millis(self.media.keyframe_interval_ms)
    }
}

/// Parses "90s", "2h", "30m" (humantime syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration ({e})"))
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Applies `CLASSRELAY_SECTION__KEY=value` (double underscore separates levels; a single
/// underscore stays part of the key, so `CLASSRELAY_MEDIA__UDP_PORT=5000` sets `media.udp_port`).
fn apply_env(value: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("CLASSRELAY_") else {
            continue;
        };
        if !rest.contains("__") {
            // CLASSRELAY_LOG and similar are not config keys.
            continue;
        }
        let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        let (last, parents) = path.split_last().expect("split yields at least one part");
        let mut table = &mut *value;
        for p in parents {
            let entry = table
                .entry(p.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(ConfigError::Parse {
                        origin: name.clone(),
                        message: format!("`{p}` is not a section"),
                    })
                }
            };
        }
        // Keep the type of the existing value: numbers and booleans parse, the rest are strings.
        let parsed = match table.get(last) {
            Some(toml::Value::Integer(_)) => raw
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|e| e.to_string()),
            Some(toml::Value::Boolean(_)) => raw
                .parse::<bool>()
                .map(toml::Value::Boolean)
                .map_err(|e| e.to_string()),
            Some(toml::Value::Array(_)) => toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .map_err(|e| e.to_string())
                .and_then(|t| t.get("v").cloned().ok_or_else(|| "empty".to_string())),
            _ => Ok(toml::Value::String(raw.clone())),
        }
        .map_err(|message| ConfigError::Value {
            key: path.join("."),
            message: format!("from {name}: {message}"),
        })?;
        table.insert(last.clone(), parsed);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
