//! `classrelay-loadtest`: run a scenario against classrelay (and, where installed, Janus) and
//! print the figures as a table and JSON.
//!
//! Example (server pinned to core 0, generator to core 1):
//! `cargo build --release && target/release/classrelay-loadtest broadcast --subscribers 200`

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use classrelay_loadtest::scenario::{self, Load};
use classrelay_loadtest::target::{pin_self, ClassrelayProc};

#[derive(Parser)]
#[command(version, about = "Simulated classrooms against a WHIP/WHEP SFU")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Viewing sites / classrooms.
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
    /// VP8 IVF file the publisher loops.
    #[arg(long, default_value = "loadtest/fixtures/vp8_720p30_1200k.ivf")]
    video: PathBuf,
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
    /// Write the figures here as JSON.
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
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let (name, common, load) = match cli.scenario {
        Scenario::Broadcast { common, join_rate } => {
            let load = load_of(&common, join_rate, Duration::from_secs(1));
            ("broadcast", common, load)
        }
        Scenario::Bell { common, within } => {
            let load = load_of(&common, 0.0, within);
            ("bell", common, load)
        }
    };
    let pin = !common.no_pin;
    if pin {
        pin_self(1)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let figures = rt.block_on(async {
        let server = ClassrelayProc::start(&common.server_bin, pin.then_some(0), common.workers)?;
        scenario::run_classrelay(&server, name, &load).await
    })?;
    let runs = vec![figures];
    println!("{}", scenario::table(&runs));
    let json = serde_json::to_string_pretty(&runs)?;
    if let Some(p) = common.json {
        std::fs::write(&p, &json)?;
        println!("figures written to {}", p.display());
    }
    Ok(())
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
    }
}
