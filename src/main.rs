//! The `classrelay` command: run the server, print tokens, check a config file.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};

use classrelay::auth::{Grant, TokenKeys};
use classrelay::config::{parse_duration, Config};
use classrelay::Server;
use tokio::signal::unix::{signal, SignalKind};

/// classrelay — live lessons from hub schools to paired rural classrooms (WebRTC SFU, WHIP/WHEP).
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Config file (default: config/classrelay.toml if present, else embedded defaults).
    #[arg(long, short, global = true, env = "CLASSRELAY_CONFIG")]
    config: Option<PathBuf>,
    /// Serve options, for running without a command (`classrelay --dev`).
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// Development: also print the first administrator's password and 8-hour publish/watch
    /// links with tokens for room `demo`. Leave it off wherever stdout is logged or shared.
    #[arg(long)]
    dev: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
    /// Print a token for WHIP/WHEP clients such as OBS, GStreamer or scripts.
    Token {
        /// Room the token is for.
        #[arg(long)]
        room: String,
        /// What it allows: publish (WHIP) or subscribe (WHEP). Repeat for both.
        #[arg(long, required = true)]
        grant: Vec<Grant>,
        /// Lifetime, e.g. 90m, 2h, 7d (default: auth.default_ttl).
        #[arg(long)]
        ttl: Option<String>,
        /// Identity recorded in the token.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// Create or upgrade the database schema (also done at every start).
    Migrate,
    /// Lesson recordings.
    #[command(subcommand)]
    Recordings(RecordingsCmd),
    /// Validate a config file (with the environment overrides) and name any bad key.
    CheckConfig {
        /// The file to check (default: the --config file or config/classrelay.toml).
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RecordingsCmd {
    /// List recordings, newest first.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// (Re-)process a stopped recording into playable files and print the report (JSON).
    Process {
        /// The recording's id.
        id: i64,
    },
    /// Export a processed recording as MP4 (showcase/premium: H.264 + AAC with a title card;
    /// composite: 一屏三画面) with a thumbnail, beside its files; prints the report (JSON).
    /// Needs a build with `--features gst`.
    Export {
        /// The recording's id.
        id: i64,
        /// showcase (1280×720, 900 kbit/s), premium (1920×1080, 8 Mbit/s) or composite.
        #[arg(long, default_value = "showcase")]
        preset: String,
        /// The title card's volume (上册, 下册, …): the lesson has no such field.
        #[arg(long)]
        volume: Option<String>,
        /// Picture size instead of the preset's, WIDTHxHEIGHT.
        #[arg(long)]
        size: Option<String>,
        /// H.264 bitrate instead of the preset's, kbit/s.
        #[arg(long)]
        kbps: Option<u32>,
    },
    /// Benchmarks only: writes a made-up three-source lesson capture (an IVF file's VP8
    /// looped, Opus from libopus) as a new stopped, unprocessed recording; prints its id and
    /// figures (JSON). `classrelay-loadtest lesson` runs it, then times `process`/`export`.
    #[command(hide = true)]
    Synthesize {
        /// The lesson's length, e.g. 45m.
        #[arg(long, default_value = "45m")]
        duration: String,
        /// The VP8 IVF file every video source loops.
        #[arg(long, default_value = "loadtest/fixtures/vp8_720p30_1200k.ivf")]
        video: PathBuf,
        /// Its frame rate.
        #[arg(long, default_value_t = 30)]
        fps: u32,
    },
}

/// `classrelay recordings synthesize`: a benchmark's long lesson, as a stopped recording.
async fn synthesize_recording(
    cfg: &Config,
    duration: &str,
    video: &std::path::Path,
    fps: u32,
) -> anyhow::Result<()> {
    use classrelay::record::synth::{ivf_frames, write_lesson, SynthOptions};
    let duration = parse_duration(duration).map_err(|e| anyhow::anyhow!(e))?;
    let bytes = std::fs::read(video).with_context(|| format!("reading {}", video.display()))?;
    let frames = ivf_frames(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", video.display()))?;
    let store =
        classrelay::store::Store::open(&cfg.database.url, &cfg.data.dir.join("classrelay.db"))
            .await?;
    store.migrate().await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let ms = duration.as_millis() as i64;
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO recordings (room, lesson_id, started_at, ended_at, state) \
         VALUES ('benchmark', NULL, $1, $2, 'stopped') RETURNING id",
    )
    .bind(now - ms)
    .bind(now)
    .fetch_one(store.pool())
    .await?;
    let dir = cfg.recording.dir_in(&cfg.data.dir).join(id.to_string());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let capture = dir.join(classrelay::record::storage::CAPTURE_FILE);
    let started = std::time::Instant::now();
    let report = write_lesson(
        &capture,
        &SynthOptions {
            duration_ms: ms as u64,
            video: frames,
            fps,
            room: "benchmark".into(),
            started_unix_ms: now - ms,
        },
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    sqlx::query("UPDATE recordings SET capture_path = $1 WHERE id = $2")
        .bind(capture.display().to_string())
        .bind(id)
        .execute(store.pool())
        .await?;
    store.close().await;
    println!(
        "{}",
        serde_json::json!({
            "id": id,
            "capture": capture,
            "written_s": started.elapsed().as_secs_f64(),
            "report": report,
        })
    );
    Ok(())
}

/// `classrelay recordings export ID --preset P`: exports now, in this process (the server's
/// background jobs do the same through the API), printing progress to stderr.
async fn export_recording(
    cfg: &Config,
    id: i64,
    preset: String,
    volume: Option<String>,
    size: Option<String>,
    kbps: Option<u32>,
) -> anyhow::Result<()> {
    use classrelay::record::export::{ExportRequest, PRESETS};
    use classrelay::school::exports;
    if !PRESETS.contains(&preset.as_str()) {
        anyhow::bail!("unknown preset {preset:?}: showcase, premium or composite");
    }
    if !classrelay::record::export::available() {
        anyhow::bail!("{}", classrelay::record::export::NEEDS_GST);
    }
    let size = match size {
        None => None,
        Some(s) => {
            let (w, h) = s
                .split_once(['x', '×'])
                .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)))
                .with_context(|| format!("--size {s:?}: expected WIDTHxHEIGHT"))?;
            Some((w, h))
        }
    };
    let store =
        classrelay::store::Store::open(&cfg.database.url, &cfg.data.dir.join("classrelay.db"))
            .await?;
    store.migrate().await?;
    let found = async {
        let dir = exports::recording_dir(&store, id).await?;
        let mut title = exports::title_card(&store, id).await?;
        if let Some(v) = volume {
            title.volume = v;
        }
        Ok::<_, exports::ExportJobError>((dir, title))
    }
    .await;
    store.close().await;
    let (dir, title) = found.with_context(|| format!("exporting recording {id}"))?;
    let req = ExportRequest {
        preset,
        title,
        size,
        video_kbps: kbps,
    };
    let mut shown = -1i32;
    let outcome = exports::export_now(dir, req, move |f| {
        let pct = (f * 100.0) as i32;
        if pct / 10 != shown / 10 {
            shown = pct;
            eprintln!("export: {pct} %");
        }
    })
    .await
    .with_context(|| format!("exporting recording {id}"))?;
    println!("{}", serde_json::to_string_pretty(&outcome)?);
    Ok(())
}

/// `classrelay recordings process ID`: processes it now (as the server does when it stops) and
/// prints the report.
async fn process_recording(cfg: &Config, id: i64) -> anyhow::Result<()> {
    let store =
        classrelay::store::Store::open(&cfg.database.url, &cfg.data.dir.join("classrelay.db"))
            .await?;
    store.migrate().await?;
    let r = classrelay::school::recording_files::process(&store, id).await;
    store.close().await;
    let r = r.with_context(|| format!("processing recording {id}"))?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}

/// `classrelay recordings list`: the `recordings` rows.
fn recordings(config: Option<PathBuf>, cmd: RecordingsCmd) -> anyhow::Result<()> {
    let cfg = Config::load(config.as_deref())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let json = match cmd {
        RecordingsCmd::List { json } => json,
        RecordingsCmd::Process { id } => return rt.block_on(process_recording(&cfg, id)),
        RecordingsCmd::Export {
            id,
            preset,
            volume,
            size,
            kbps,
        } => return rt.block_on(export_recording(&cfg, id, preset, volume, size, kbps)),
        RecordingsCmd::Synthesize {
            duration,
            video,
            fps,
        } => return rt.block_on(synthesize_recording(&cfg, &duration, &video, fps)),
    };
    rt.block_on(async {
        let store =
            classrelay::store::Store::open(&cfg.database.url, &cfg.data.dir.join("classrelay.db"))
                .await?;
        store.migrate().await?;
        let rows = classrelay::school::recording::list(&store).await?;
        store.close().await;
        if json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
            return Ok(());
        }
        println!(
            "{:>6}  {:<10}  {:>7}  {:<24}  {:<24}  capture",
            "id", "state", "lesson", "started", "ended"
        );
        for r in rows {
            let when = |ms: i64| {
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default()
            };
            println!(
                "{:>6}  {:<10}  {:>7}  {:<24}  {:<24}  {}{}",
                r.id,
                r.state,
                r.lesson_id
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "-".into()),
                when(r.started_at),
                r.ended_at.map(when).unwrap_or_else(|| "-".into()),
                r.capture_path,
                r.error.map(|e| format!("  ({e})")).unwrap_or_default(),
            );
        }
        Ok::<_, anyhow::Error>(())
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CLASSRELAY_LOG")
                .unwrap_or_else(|_| "info,str0m=warn,is=warn".into()),
        )
        .init();
    if cli.serve.dev && !matches!(cli.command, None | Some(Cmd::Serve(_))) {
        Cli::command()
            .error(ErrorKind::ArgumentConflict, "--dev belongs to serve only")
            .exit();
    }
    match cli.command.unwrap_or(Cmd::Serve(ServeArgs::default())) {
        Cmd::Serve(args) => serve(cli.config, args.dev || cli.serve.dev),
        Cmd::Token {
            room,
            grant,
            ttl,
            name,
        } => {
            let cfg = Config::load(cli.config.as_deref())?;
            classrelay::ids::RoomName::parse(&room)?;
            let ttl = parse_duration(ttl.as_deref().unwrap_or(&cfg.auth.default_ttl))
                .map_err(|e| anyhow::anyhow!(e))?;
            let (secret, _) =
                classrelay::auth::load_or_create_secret(&cfg.auth.secret, &cfg.data.dir)
                    .context("reading the signing secret")?;
            println!(
                "{}",
                TokenKeys::new(&secret).mint(&name, &room, &grant, ttl)
            );
            Ok(())
        }
        Cmd::Migrate => {
            let cfg = Config::load(cli.config.as_deref())?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(async {
                let store = classrelay::store::Store::open(
                    &cfg.database.url,
                    &cfg.data.dir.join("classrelay.db"),
                )
                .await?;
                store.migrate().await?;
                println!("database schema is up to date ({:?})", store.backend());
                store.close().await;
                Ok::<_, anyhow::Error>(())
            })
        }
        Cmd::Recordings(cmd) => recordings(cli.config, cmd),
        Cmd::CheckConfig { file } => {
            let path = file.or(cli.config);
            match Config::load(path.as_deref()) {
                Ok(_) => {
                    println!("config OK");
                    Ok(())
                }
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(2);
                }
            }
        }
    }
}

/// Runs the server until Ctrl-C or SIGTERM, then shuts it down gracefully. Prints how to log in, never a password or token unless
/// `dev`; the listening line comes last.
fn serve(config: Option<PathBuf>, dev: bool) -> anyhow::Result<()> {
    let cfg = Config::load(config.as_deref())?;
    let password_file = classrelay::auth::first_admin::password_file(&cfg.data.dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let server = Server::start(cfg).await?;
        let base = server.base_url();
        let file = password_file.display();
        if server.secret_generated() {
            println!("Generated a new signing secret (kept in the data directory).");
        }
        match server.first_admin() {
            Some((user, password)) if dev => println!(
                "Created the first administrator. Log in at {base}/login as `{user}` with \
                 password `{password}` (also in {file} until you set your own)."
            ),
            Some((user, _)) => println!(
                "Created the first administrator. Log in at {base}/login as `{user}` with the \
                 password in {file} (removed once you set your own)."
            ),
            None if password_file.exists() => println!(
                "Log in at {base}/login as `{}` with the password in {file}.",
                classrelay::auth::first_admin::USERNAME
            ),
            None => {}
        }
        if dev {
            let room = "demo";
            let ttl = Duration::from_secs(8 * 3600);
            let pubt = server.mint_token(room, Grant::Publish, ttl);
            let subt = server.mint_token(room, Grant::Subscribe, ttl);
            println!("Dev tokens for room `{room}` (valid 8 h):");
            println!("  publish: {base}/publish?room={room}&token={pubt}");
            println!("  watch:   {base}/watch?room={room}&token={subt}");
            println!("  OBS:     WHIP URL {base}/whip/{room}  Bearer token {pubt}");
        } else {
            println!(
                "Tokens for OBS or scripts: `classrelay token --room <room> --grant publish`; \
                 demo links: start with --dev."
            );
        }
        // SIGTERM too: what `docker stop` and systemd send (PID 1 in a container has no
        // default handler for it). Both handlers are in place before the listening line, which
        // is what supervisors and tests wait for: a signal sent right after it is handled.
        let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("handling Ctrl-C")?;
        println!(
            "classrelay listening on {base}  (media UDP {:?})",
            server.media_addrs()
        );
        let why = tokio::select! {
            _ = interrupt.recv() => "Ctrl-C",
            _ = terminate.recv() => "SIGTERM",
        };
        println!("shutting down ({why})");
        server.shutdown().await;
        println!("stopped");
        Ok::<_, anyhow::Error>(())
    })
}
