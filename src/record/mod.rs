//! Lesson recording: the capture taken beside the packet path, and the processing that turns a
//! capture into browser-playable files. Must never be on the packet path itself: the media core
//! only hands packets to a bounded channel; everything here runs on its own threads.
//!
//! - [`format`]: the records a capture holds (the contract between capture and processing).
//! - [`process`]: a capture → WebM/Matroska files per source and the lesson's manifest.

pub mod format;
pub mod process;
