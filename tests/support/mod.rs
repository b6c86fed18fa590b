#![allow(dead_code)]

pub mod browser;
pub mod metrics;
pub mod pg;
pub mod school;
pub mod webrtc_client;
