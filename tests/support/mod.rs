#![allow(dead_code)]

pub mod browser;
pub mod webrtc_client;
