//! The capture writer thread on real files: a full disk (a 2 MiB tmpfs mounted for the test)
//! stops that recording with an error event and metric, keeps what was written readable, and
//! never blocks or fails the sender; another recording on a good disk goes on. Must never
//! mock the filesystem or skip silently (no root: `support::skip::because`).

mod support;

use std::time::{Duration, Instant};

use classrelay::metrics::Metrics;
use classrelay::record::file::{read_capture, DamageKind};
use classrelay::record::format::{CaptureHeader, Record, FORMAT_VERSION};
use classrelay::record::writer::{Writer, WriterEvent, WriterMsg};
use crossbeam_channel::TrySendError;
use support::recording::Tmpfs;

fn header(room: &str) -> CaptureHeader {
    CaptureHeader {
        version: FORMAT_VERSION,
        room: room.into(),
        lesson_id: Some(1),
        started_unix_ms: 0,
    }
}

fn packet(n: u32) -> Record {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&(n as u16).to_be_bytes());
    p.extend_from_slice(&n.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1]);
    p.resize(1200, (n % 251) as u8);
    Record::Rtp {
        track: 1,
        arrival_us: u64::from(n) * 1000,
        packet: p,
    }
}

#[test]
fn a_full_disk_stops_that_recording_keeps_what_was_written_and_spares_the_others() {
    let full_dir = tempfile::tempdir().expect("tempdir");
    let good_dir = tempfile::tempdir().expect("tempdir");
    let _fs = match Tmpfs::mount(full_dir.path(), "2m") {
        Ok(fs) => fs,
        Err(why) => return support::skip::because(why),
    };
    let metrics = Metrics::new();
    let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
    let writer = Writer::start(
        1024,
        metrics.capture.clone(),
        Box::new(move |e| {
            let _ = ev_tx.send(e);
        }),
    );
    let tx = writer.sender();
    let full = full_dir.path().join("1.cap");
    let good = good_dir.path().join("2.cap");
    tx.send(WriterMsg::Open {
        id: 1,
        path: full.clone(),
        header: header("full"),
    })
    .expect("writer alive");
    tx.send(WriterMsg::Open {
        id: 2,
        path: good.clone(),
        header: header("good"),
    })
    .expect("writer alive");
    // ~6 MiB into a 2 MiB filesystem, the way a media worker sends: try_send only, never
    // waiting; a full channel is a counted drop, not a wait.
    let mut dropped = 0u32;
    let mut failed = None;
    let start = Instant::now();
    for n in 0..5000u32 {
        for id in [1, 2] {
            match tx.try_send(WriterMsg::Record {
                id,
                sent: Instant::now(),
                record: packet(n),
            }) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => dropped += 1,
                Err(TrySendError::Disconnected(_)) => panic!("writer gone"),
            }
        }
        if n % 200 == 0 {
            // Let the writer keep up (a real lesson sends ~250 packets/s per stream).
            while tx.len() > 256 {
                std::thread::yield_now();
            }
        }
        while let Ok(e) = ev_rx.try_recv() {
            if let WriterEvent::Failed { id, error } = e {
                failed = Some((id, error));
            }
        }
    }
    eprintln!(
        "sent 2 x 5000 packets in {:?}, {dropped} dropped at a full channel",
        start.elapsed()
    );
    // Await the failure event (the disk fills at ~1700 packets).
    let (id, error) = match failed {
        Some(f) => f,
        None => loop {
            match ev_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(WriterEvent::Failed { id, error }) => break (id, error),
                Ok(_) => {}
                Err(e) => panic!("no Failed event: {e}"),
            }
        },
    };
    assert_eq!(id, 1);
    assert!(error.contains("No space left"), "{error}");
    let (rtx, rrx) = tokio::sync::oneshot::channel();
    tx.send(WriterMsg::Close {
        id: 2,
        reply: Some(rtx),
    })
    .expect("writer alive");
    let closed = rrx.blocking_recv().expect("closed");
    assert_eq!(closed.error, None, "the good disk's recording goes on");
    drop(tx);
    writer.stop();

    assert_eq!(metrics.capture.write_errors.get(), 1);
    assert_eq!(metrics.capture.failed.get(), 1);
    let text = metrics.encode();
    assert!(
        text.contains("classrelay_capture_write_errors_total 1"),
        "{text}"
    );

    let (c, rep) = read_capture(&full);
    assert_eq!(c.header, Some(header("full")));
    assert!(
        c.records.len() > 1000,
        "most of 2 MiB kept: {}",
        c.records.len()
    );
    for (i, r) in c.records.iter().enumerate() {
        assert_eq!(r, &packet(i as u32), "record {i} is the packet sent");
    }
    // A write cut by ENOSPC leaves a torn last frame, or ends on a boundary.
    if let Some(d) = &rep.damage {
        assert_eq!(d.kind, DamageKind::Torn, "{}", rep.describe());
    }
    eprintln!(
        "full disk: {} records kept, {}",
        c.records.len(),
        rep.describe()
    );

    let (c, rep) = read_capture(&good);
    assert_eq!(rep.damage, None, "{}", rep.describe());
    assert_eq!(c.records.len() as u64, closed.records);
    // Every packet the channel took is there, in order (drops only at a full channel).
    let mut next = 0u32;
    for r in &c.records {
        let seq = (next..5000)
            .find(|n| &packet(*n) == r)
            .expect("each record is a later packet sent");
        next = seq + 1;
    }
    assert!(c.records.len() as u64 + u64::from(dropped) >= 5000);
}
