//! `classrelay-loadtest`: run a scenario against classrelay, Janus, or both with the same load,
//! and print the figures as a table and JSON.
//!
//! Example (server pinned to core 0, generator to core 1):
//! `cargo build --release && target/release/classrelay-loadtest broadcast --subscribers 200`
//! `target/release/classrelay-loadtest broadcast --target both --subscribers 100`
//!
//! `target/release/classrelay-loadtest sweep --target both --counts 50,100,200 --swarms 2`
//! (broadcast at each count; figures as JSON and CPU/latency against subscribers as SVG)
//!
//! With `--target janus|both` this binary re-executes itself inside Janus's network namespace
//! with the hidden `janus-inner` subcommand (see `classrelay_loadtest::side`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use classrelay_loadtest::janus::{JanusOptions, JanusServer};
use classrelay_loadtest::scenario::{self, Figures, Load, Ratios};
use classrelay_loadtest::target::{pin_self, ClassrelayProc, ServerOptions};
use classrelay_loadtest::{plot, recbench, side};

#[derive(Parser)]
#[command(
    version,
    about = "Simulated classrooms against a WHIP/WHEP SFU (and Janus side by side)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// classrelay only.
    Classrelay,
    /// Janus (Streaming plugin) only.
    Janus,
    /// classrelay, then Janus with the same load; both tables side by side with the ratios.
    Both,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Which server(s) to run the scenario against.
    #[arg(long, value_enum, default_value_t = Target::Classrelay)]
    target: Target,
    /// Viewing sites / classrooms (not used by `sync`: see --classes).
    #[arg(long, default_value_t = 50)]
    subscribers: usize,
    /// Measurement window, e.g. 20s.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Settling time after the joins.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// The classrelay binary to start.
    #[arg(long, default_value = "target/release/classrelay")]
    server_bin: PathBuf,
    /// The janus binary to start (Debian's package).
    #[arg(long, default_value = "/usr/bin/janus")]
    janus_bin: PathBuf,
    /// Streaming plugin helper threads (`threads` of the mountpoint, 0 = none).
    #[arg(long, default_value_t = 0)]
    janus_threads: u32,
    /// Video file the publisher loops: VP8 in IVF, or H.264 Annex B (e.g.
    /// loadtest/fixtures/h264_720p30_1200k.h264); the codec follows the file.
    #[arg(long, default_value = "loadtest/fixtures/vp8_720p30_1200k.ivf")]
    video: PathBuf,
    /// Simulcast: the publisher sends these rids (highest first, e.g. h,m,l), each layer a
    /// cut of the file's frames at half the size of the one above (classrelay only; viewers
    /// get the layer the server picks).
    #[arg(long, value_delimiter = ',')]
    simulcast: Vec<String>,
    /// Frame rate of the file.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Subscriber threads in the generator.
    #[arg(long, default_value_t = 1)]
    swarms: usize,
    /// Media workers of the server.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Do not pin the server to core 0 and the generator to core 1.
    #[arg(long)]
    no_pin: bool,
    /// Run the server (every thread) and the publisher's thread `SCHED_FIFO` (`chrt`), so
    /// the generator's viewer threads never delay them. For latency with `--no-pin` and
    /// `--workers 2`, where server and generator share both cores (needs root).
    #[arg(long)]
    realtime: bool,
    /// The server's `media.spread_after`: viewers stay on the publisher's worker until it
    /// holds this many peers (default: the server's own, 50).
    #[arg(long)]
    spread_after: Option<usize>,
    /// Viewers' sockets without UDP_GRO: on loopback the kernel then cuts the server's UDP
    /// GSO runs back into datagrams on the server's core (work a viewer's own machine does
    /// on a real network).
    #[arg(long)]
    no_viewer_gro: bool,
    /// The viewers' threads poll without sleeping, so the server's sends never have to wake
    /// one (on loopback that wake-up runs on the server's core, inside its send call: a
    /// viewer's cost a real network never puts on the server). Costs the generator's CPU.
    #[arg(long)]
    spin_viewers: bool,
    /// Write the figures here as JSON: `{"runs": [...], "ratios": {...} | null}`.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Scenario {
    /// 名师课堂: one publisher, many viewing sites.
    Broadcast {
        #[command(flatten)]
        common: Common,
        /// Joins per second.
        #[arg(long, default_value_t = 50.0)]
        join_rate: f64,
    },
    /// Lesson start: every classroom joins within a short window.
    Bell {
        #[command(flatten)]
        common: Common,
        /// All joins happen within this window.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        within: Duration,
    },
    /// 同步课堂: one hub and K classes, all two-way (classrelay only).
    Sync {
        #[command(flatten)]
        common: Common,
        /// Classes (each publishes --class-video and receives the hub).
        #[arg(long, default_value_t = 6)]
        classes: usize,
        /// VP8 IVF file each class publishes (same frame rate as --video).
        #[arg(long, default_value = "tests/fixtures/video_vp8.ivf")]
        class_video: PathBuf,
        /// Class joins per second.
        #[arg(long, default_value_t = 10.0)]
        join_rate: f64,
    },
    /// Broadcast at several subscriber counts: a table per count, all figures as JSON
    /// (`{"sweep": [{"runs": [...], "ratios": ...}, ...]}`) and a plot of server CPU and
    /// latency against subscribers (SVG).
    Sweep {
        #[command(flatten)]
        common: Common,
        /// Subscriber counts, e.g. 50,100,200,400 (--subscribers is not used).
        #[arg(long, value_delimiter = ',', required = true)]
        counts: Vec<usize>,
        /// Joins per second.
        #[arg(long, default_value_t = 50.0)]
        join_rate: f64,
        /// Where the plot goes.
        #[arg(long, default_value = "loadtest-sweep.svg")]
        svg: PathBuf,
    },
    /// Plots figures written by earlier runs (`--json` of any scenario, or of `sweep`).
    Plot {
        /// JSON files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Where the plot goes.
        #[arg(long, default_value = "loadtest-sweep.svg")]
        svg: PathBuf,
        /// Title above the two charts.
        #[arg(
            long,
            default_value = "broadcast (名师课堂): one publisher, N viewing sites"
        )]
        title: String,
    },
    /// The least a forwarder must do here, with no SFU: per viewer only the header, the copy,
    /// an AES-256-GCM seal and one GSO send per frame (a `sendmmsg` share for audio), timed
    /// from capture to the kernel's arrival stamp as `broadcast` times the server. A lower
    /// bound on classrelay's CPU per viewer and latency on this machine.
    Floor {
        /// Viewing sites.
        #[arg(long, default_value_t = 500)]
        subscribers: usize,
        /// Sender threads (the media workers it stands for).
        #[arg(long, default_value_t = 2)]
        senders: usize,
        /// Threads reading the viewers' sockets.
        #[arg(long, default_value_t = 2)]
        receivers: usize,
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        warmup: Duration,
        #[arg(long, default_value = "loadtest/fixtures/vp8_720p30_1200k.ivf")]
        video: PathBuf,
        #[arg(long, default_value_t = 30)]
        fps: u32,
        /// Sender threads `SCHED_FIFO`, as `--realtime` runs the server (needs root).
        #[arg(long)]
        realtime: bool,
        /// Send several viewers' GSO runs per `sendmmsg` instead of a call per viewer.
        #[arg(long)]
        gso_batch: bool,
        /// Receivers poll without ever sleeping. On loopback a datagram that reaches a
        /// sleeping receiver's socket wakes that thread from the sender's core (an IPI, a
        /// VM exit here): the viewers' cost, which a real network never puts on the server.
        #[arg(long)]
        spin: bool,
        /// Write the figures here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Recording's cost (issue 20): `--streams` publishers, each in its own room with
    /// `--viewers` viewers, on a fresh server with recording off, then on (`[recording]
    /// rooms = "all"`), `--rounds` times: server CPU, forwarded packets per CPU-second, and
    /// the capture writer's throughput, lag and drops from `/metrics`.
    Record {
        #[command(flatten)]
        common: Common,
        /// Publishers (recorded streams), each in room `rec-N`.
        #[arg(long, default_value_t = 100)]
        streams: usize,
        /// Each publisher's video bitrate (the file's frames padded up to it), e.g. 2.5M.
        #[arg(long, default_value = "2.5M")]
        bitrate: String,
        /// Viewers per room.
        #[arg(long, default_value_t = 1)]
        viewers: usize,
        /// Off/on pairs.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
    },
    /// A made-up three-source lesson (`classrelay recordings synthesize`: the IVF file's VP8
    /// looped, Opus), then `classrelay recordings process` timed `--runs` times and each
    /// `--export` preset timed (a `--features gst` server build) with its real-time factor.
    Lesson {
        /// The lesson's length.
        #[arg(long, default_value = "45m")]
        duration: String,
        /// The VP8 IVF file every video source loops.
        #[arg(long, default_value = "loadtest/fixtures/vp8_720p30_1200k.ivf")]
        video: PathBuf,
        /// The classrelay binary.
        #[arg(long, default_value = "target/release/classrelay")]
        server_bin: PathBuf,
        /// Processing runs.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Export presets to time, e.g. showcase (repeatable).
        #[arg(long)]
        export: Vec<String>,
        /// Data directory to use and keep (default: a temporary one, removed).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Write the figures here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Issue 19's mixed classrooms: `--subscribers` sites watch one simulcast publisher
    /// (three layers of the file unless `--simulcast` says otherwise), `--impaired` of them
    /// each behind its own impaired link (`--profile`), with the server's per-viewer
    /// estimation on, off or both (a fresh server each). Per link: the delivered layer
    /// (share of complete frames), loss, freezes (> 500 ms without a complete frame),
    /// bitrate, and the server's CPU. classrelay only: Janus has no per-viewer bandwidth
    /// estimate to compare.
    Mixed {
        #[command(flatten)]
        common: Common,
        /// Share of the sites behind an impaired link, e.g. 30% (or 0.3).
        #[arg(long, default_value = "30%")]
        impaired: String,
        /// The impaired link: rural (1.2 Mbit/s, 3 % loss, 150 ms RTT, 30 ms jitter),
        /// satellite (2 Mbit/s, 1 % loss, 600 ms RTT) or lossy5 (5 % loss).
        #[arg(long, default_value = "rural")]
        profile: String,
        /// The server's per-viewer estimation (`media.downlink_adaptation`): on, off, or both
        /// (off, then on, side by side).
        #[arg(long, default_value = "on")]
        estimation: String,
        /// Joins per second.
        #[arg(long, default_value_t = 20.0)]
        join_rate: f64,
    },
    /// Runs the load inside Janus's namespace (started by `--target janus|both`).
    #[command(hide = true)]
    JanusInner,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let (name, common, load) = match cli.scenario {
        Scenario::JanusInner => {
            return side::inner_main()
                .unwrap_or_else(|| bail!("janus-inner is run by --target janus|both"));
        }
        Scenario::Plot { files, svg, title } => {
            let mut runs = Vec::new();
            for f in &files {
                runs.extend(read_runs(f)?);
            }
            plot::svg(&runs, &title, &svg)?;
            println!("plot written to {}", svg.display());
            return Ok(());
        }
        Scenario::Floor {
            subscribers,
            senders,
            receivers,
            duration,
            warmup,
            video,
            fps,
            realtime,
            gso_batch,
            spin,
            json,
        } => {
            let f = classrelay_loadtest::floor::run(&classrelay_loadtest::floor::FloorOptions {
                subscribers,
                senders,
                receivers,
                warmup,
                duration,
                video,
                fps,
                realtime,
                gso_batch,
                spin,
            })?;
            if let Some(p) = json {
                std::fs::write(&p, serde_json::to_string_pretty(&f)?)?;
                println!("figures written to {}", p.display());
            }
            return Ok(());
        }
        Scenario::Sweep {
            common,
            counts,
            join_rate,
            svg,
        } => return sweep(&common, &counts, join_rate, &svg),
        Scenario::Record {
            common,
            streams,
            bitrate,
            viewers,
            rounds,
        } => return record(common, streams, &bitrate, viewers, rounds),
        Scenario::Lesson {
            duration,
            video,
            server_bin,
            runs,
            export,
            data,
            json,
        } => {
            let s = recbench::lesson(&recbench::LessonOptions {
                duration,
                video,
                server_bin,
                runs,
                exports: export,
                data,
            })?;
            if let Some(p) = json {
                std::fs::write(&p, serde_json::to_string_pretty(&s)?)?;
                println!("figures written to {}", p.display());
            }
            return Ok(());
        }
        Scenario::Mixed {
            common,
            impaired,
            profile,
            estimation,
            join_rate,
        } => return mixed(common, &impaired, &profile, &estimation, join_rate),
        Scenario::Broadcast { common, join_rate } => {
            let load = load_of(&common, join_rate, Duration::from_secs(1));
            ("broadcast", common, load)
        }
        Scenario::Bell { common, within } => {
            let load = load_of(&common, 0.0, within);
            ("bell", common, load)
        }
        Scenario::Sync {
            common,
            classes,
            class_video,
            join_rate,
        } => {
            let mut load = load_of(&common, join_rate, Duration::from_secs(1));
            load.subscribers = classes;
            load.classes = classes;
            load.class_video = class_video;
            ("sync", common, load)
        }
    };
    simulcast_is_classrelay_only(&common);
    if name == "sync" && common.target == Target::Janus {
        // A plain message and a usage-error exit code, not an error with a backtrace.
        eprintln!("{}", side::SYNC_UNSUPPORTED);
        std::process::exit(2);
    }
    if !common.no_pin {
        pin_self(1)?;
    }
    let (runs, ratios) = run_targets(name, &common, &load)?;
    let json = serde_json::to_string_pretty(&json!({ "runs": runs, "ratios": ratios }))?;
    if let Some(p) = common.json {
        std::fs::write(&p, &json)?;
        println!("figures written to {}", p.display());
    }
    Ok(())
}

/// `mixed`: classrelay only; one fresh server per estimation setting.
fn mixed(
    common: Common,
    impaired: &str,
    profile: &str,
    estimation: &str,
    join_rate: f64,
) -> Result<()> {
    use classrelay_loadtest::mixed::{self as m, MixedOptions, Profile};
    if common.target != Target::Classrelay {
        eprintln!("mixed is classrelay only: {}", m::NO_JANUS);
        std::process::exit(2);
    }
    let Some(profile) = Profile::parse(profile) else {
        bail!("--profile must be rural, satellite or lossy5, not {profile:?}");
    };
    let share = parse_share(impaired)?;
    let settings: &[bool] = match estimation {
        "on" => &[true],
        "off" => &[false],
        "both" => &[false, true],
        other => bail!("--estimation must be on, off or both, not {other:?}"),
    };
    if !common.no_pin {
        pin_self(1)?;
    }
    let load = load_of(&common, join_rate, Duration::from_secs(1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut runs = Vec::new();
    for &on in settings {
        let f = rt.block_on(async {
            let server = ClassrelayProc::start_with_env(
                &common.server_bin,
                &ServerOptions {
                    core: (!common.no_pin).then_some(0),
                    workers: common.workers,
                    realtime: common.realtime,
                    spread_after: common.spread_after,
                },
                &m::server_env(on),
            )?;
            m::run(
                &server,
                &MixedOptions {
                    load: load.clone(),
                    impaired: share,
                    profile,
                    estimation: on,
                },
            )
            .await
        })?;
        runs.push(f);
    }
    println!("{}", m::table(&runs));
    if let Some(p) = common.json {
        std::fs::write(&p, serde_json::to_string_pretty(&json!({ "runs": runs }))?)?;
        println!("figures written to {}", p.display());
    }
    Ok(())
}

/// A share given as `30%` or `0.3`.
fn parse_share(s: &str) -> Result<f64> {
    let v = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => s.trim().parse::<f64>(),
    };
    match v {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => bail!("--impaired must be a share such as 30% or 0.3, not {s:?}"),
    }
}

/// `record`: classrelay only, recording off then on per round.
fn record(
    common: Common,
    streams: usize,
    bitrate: &str,
    viewers: usize,
    rounds: usize,
) -> Result<()> {
    if common.target != Target::Classrelay {
        eprintln!("record is classrelay only");
        std::process::exit(2);
    }
    let bitrate = recbench::parse_bitrate(bitrate)?;
    if !common.no_pin {
        pin_self(1)?;
    }
    let mut load = load_of(&common, 50.0, Duration::from_secs(1));
    load.subscribers = streams * viewers;
    let o = recbench::RecordOptions {
        streams,
        bitrate,
        viewers,
        rounds,
        server_bin: common.server_bin.clone(),
        server: ServerOptions {
            core: (!common.no_pin).then_some(0),
            workers: common.workers,
            realtime: common.realtime,
            spread_after: common.spread_after,
        },
        load,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let s = rt.block_on(recbench::record(&o))?;
    if let Some(p) = common.json {
        std::fs::write(&p, serde_json::to_string_pretty(&s)?)?;
        println!("figures written to {}", p.display());
    }
    Ok(())
}

/// `--simulcast` with Janus is a usage error (exit 2): its Streaming mountpoint takes one
/// RTP stream per medium.
fn simulcast_is_classrelay_only(common: &Common) {
    if !common.simulcast.is_empty() && common.target != Target::Classrelay {
        eprintln!(
            "--simulcast is classrelay only: the Janus Streaming mountpoint takes one RTP \
             stream per medium"
        );
        std::process::exit(2);
    }
}

/// Runs `broadcast` at each count, then writes the JSON and the plot.
fn sweep(common: &Common, counts: &[usize], join_rate: f64, svg: &std::path::Path) -> Result<()> {
    simulcast_is_classrelay_only(common);
    if !common.no_pin {
        pin_self(1)?;
    }
    let mut steps = Vec::new();
    let mut all: Vec<Figures> = Vec::new();
    for &n in counts {
        println!("== broadcast, {n} subscribers ==");
        let mut load = load_of(common, join_rate, Duration::from_secs(1));
        load.subscribers = n;
        let (runs, ratios) = run_targets("broadcast", common, &load)?;
        all.extend(runs.iter().cloned());
        steps.push(json!({ "runs": runs, "ratios": ratios }));
    }
    if let Some(p) = &common.json {
        std::fs::write(p, serde_json::to_string_pretty(&json!({ "sweep": steps }))?)?;
        println!("figures written to {}", p.display());
    }
    plot::svg(
        &all,
        "broadcast (名师课堂): one publisher, N viewing sites",
        svg,
    )?;
    println!("plot written to {}", svg.display());
    Ok(())
}

/// The runs in a JSON file written by `--json` (one scenario, or a sweep).
fn read_runs(path: &std::path::Path) -> Result<Vec<Figures>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", path.display()))?;
    let mut runs = Vec::new();
    let steps = match v.get("sweep") {
        Some(serde_json::Value::Array(steps)) => steps.clone(),
        _ => vec![v],
    };
    for step in steps {
        let Some(r) = step.get("runs") else {
            bail!("{}: no \"runs\" (not written by --json?)", path.display());
        };
        let r: Vec<Figures> = serde_json::from_value(r.clone())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        runs.extend(r);
    }
    Ok(runs)
}

/// Runs scenario `name` against the target(s) in `common`, prints the table(s).
fn run_targets(name: &str, common: &Common, load: &Load) -> Result<(Vec<Figures>, Option<Ratios>)> {
    let pin = !common.no_pin;
    let mut runs: Vec<Figures> = Vec::new();
    if matches!(common.target, Target::Classrelay | Target::Both) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let figures = rt.block_on(async {
            let server = ClassrelayProc::start(
                &common.server_bin,
                &ServerOptions {
                    core: pin.then_some(0),
                    workers: common.workers,
                    realtime: common.realtime,
                    spread_after: common.spread_after,
                },
            )?;
            scenario::run_classrelay(&server, name, load).await
        })?;
        runs.push(figures);
    }
    if matches!(common.target, Target::Janus | Target::Both) {
        if name == "sync" {
            println!("janus: {}", side::SYNC_UNSUPPORTED);
        } else {
            let (video_codec, _) = classrelay_loadtest::h264::load_video(&common.video)?;
            let server = JanusServer::start(JanusOptions {
                janus_bin: common.janus_bin.clone(),
                video_codec,
                threads: common.janus_threads,
                core: pin.then_some(0),
                realtime: common.realtime,
                ..JanusOptions::default()
            })?;
            runs.push(side::run_janus(&server, &["janus-inner"], name, load)?);
        }
    }
    let ratios = match runs.as_slice() {
        [c, j] => {
            println!("{}", scenario::table_side_by_side(c, j));
            Some(Ratios::of(c, j))
        }
        _ => {
            println!("{}", scenario::table(&runs));
            None
        }
    };
    Ok((runs, ratios))
}

fn load_of(c: &Common, join_rate: f64, window: Duration) -> Load {
    Load {
        subscribers: c.subscribers,
        join_rate,
        join_window: window,
        warmup: c.warmup,
        duration: c.duration,
        video: c.video.clone(),
        fps: c.fps,
        swarms: c.swarms,
        classes: 0,
        class_video: PathBuf::from("tests/fixtures/video_vp8.ivf"),
        simulcast: c.simulcast.clone(),
        viewer_gro: !c.no_viewer_gro,
        viewer_spin: c.spin_viewers,
        realtime: c.realtime,
    }
}
