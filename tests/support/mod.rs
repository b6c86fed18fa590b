#![allow(dead_code)]

pub mod browser;
pub mod pg;
pub mod school;
pub mod webrtc_client;
