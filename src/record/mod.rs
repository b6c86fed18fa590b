//! Lesson recording: the capture taken beside the packet path, and the processing that turns a
//! capture into browser-playable files. Must never be on the packet path itself: the media core
//! only hands packets to a bounded channel; everything here runs on its own threads.
//!
//! - [`format`]: the records a capture holds (the contract between capture and processing).
//! - [`file`]: the capture file on disk (docs/CAPTURE.md), its encoder and its reader.
//! - [`writer`]: the writer thread that owns the open capture files.
//! - [`storage`]: where a recording's files live (a directory now, object storage later).
//! - [`process`]: a capture → WebM/Matroska files per source and the lesson's manifest.
//! - [`voice`]: a processed source's Opus audio → voice activity per 20 ms (the S-T draft).

pub mod file;
pub mod format;
pub mod process;
pub mod storage;
pub mod writer;
// The glue: a recording's capture → its files and manifest (issue 20).
pub mod recover;
// The automatic S-T draft's ears: a processed source's Opus → voice activity (issue 21).
pub mod voice;
// Exports of a processed recording (MP4 through GStreamer, feature `gst`; issue 20 item 4).
pub mod export;
// A made-up long lesson capture for the processing and export benchmarks (issue 20).
pub mod synth;
