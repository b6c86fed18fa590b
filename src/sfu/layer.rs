//! The simulcast decision for one subscriber slot and one packet: which layer the slot
//! receives, when it switches (and asks for the new layer's keyframe), and which packets go
//! to it meanwhile. Plain data with time as an argument: it must never touch a socket, an
//! `Rtc` or the track table (the caller works out the layer wanted and the source the slot's
//! output shows).
//!
//! A switch is seamless because the slot keeps getting the layer it shows until the new
//! layer's keyframe starts in its rewriter (`forward::Rewriter`, which lets a new source in
//! only at a keyframe): packets of the layer switched to are offered from the moment of the
//! switch, those of the layer switched from while the output still shows it, others never.

use std::time::Instant;

use super::forward::SourceId;

/// A receiving slot's layer and its wait for a keyframe (also used, without simulcast, for
/// the first picture after binding or connecting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LayerSwitch {
    /// The layer chosen (index into the track's layers).
    pub layer: usize,
    /// Since when the slot waits for a keyframe to start or switch, if it does.
    pub waiting_keyframe: Option<Instant>,
    /// When the server last asked for a keyframe on this slot's behalf.
    pub last_kf_request: Option<Instant>,
}

/// What to do with one packet for one simulcast slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Action {
    /// The slot switched to this layer just now: ask for its keyframe.
    pub ask_keyframe: Option<usize>,
    /// Offer the packet to the slot's rewriter.
    pub forward: bool,
}

impl LayerSwitch {
    /// A packet of layer `packet_layer` from stream `source` arrives while the slot should
    /// receive layer `want` and its output shows `showing`.
    #[must_use]
    pub(crate) fn on_packet(
        &mut self,
        want: usize,
        packet_layer: usize,
        source: SourceId,
        showing: Option<SourceId>,
        now: Instant,
    ) -> Action {
        let mut ask_keyframe = None;
        if want != self.layer {
            self.layer = want;
            self.waiting_keyframe = Some(now);
            self.last_kf_request = Some(now);
            ask_keyframe = Some(want);
        }
        Action {
            ask_keyframe,
            forward: packet_layer == self.layer || showing == Some(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LOW: SourceId = 10;
    const HIGH: SourceId = 20;

    #[test]
    fn a_steady_slot_gets_its_layer_and_nothing_else_and_asks_for_nothing() {
        let t0 = Instant::now();
        let mut s = LayerSwitch::default();
        for i in 0..10 {
            let now = t0 + Duration::from_millis(i * 33);
            let mine = s.on_packet(0, 0, LOW, Some(LOW), now);
            assert_eq!(
                mine,
                Action {
                    ask_keyframe: None,
                    forward: true
                }
            );
            let other = s.on_packet(0, 1, HIGH, Some(LOW), now);
            assert!(!other.forward && other.ask_keyframe.is_none());
        }
        assert_eq!(s.waiting_keyframe, None);
    }

    #[test]
    fn a_switch_asks_once_and_keeps_the_old_layer_until_the_output_shows_the_new_one() {
        let t0 = Instant::now();
        let mut s = LayerSwitch::default();
        // The wanted layer goes up at t0 + 1 s: one request, stamped with that time.
        let t1 = t0 + Duration::from_secs(1);
        let first = s.on_packet(1, 0, LOW, Some(LOW), t1);
        assert_eq!(first.ask_keyframe, Some(1));
        assert!(first.forward, "the old layer still feeds the output");
        assert_eq!(s.layer, 1);
        assert_eq!(s.waiting_keyframe, Some(t1));
        assert_eq!(s.last_kf_request, Some(t1));
        // Until the keyframe: both layers are offered (the rewriter takes the new one only
        // at its keyframe), and nothing is asked again.
        for ms in 1..100 {
            let now = t1 + Duration::from_millis(ms);
            let old = s.on_packet(1, 0, LOW, Some(LOW), now);
            let new = s.on_packet(1, 1, HIGH, Some(LOW), now);
            assert!(old.forward && new.forward);
            assert!(old.ask_keyframe.is_none() && new.ask_keyframe.is_none());
        }
        assert_eq!(s.last_kf_request, Some(t1));
        // The output shows the new layer: the old one stops.
        let t2 = t1 + Duration::from_millis(100);
        assert!(!s.on_packet(1, 0, LOW, Some(HIGH), t2).forward);
        assert!(s.on_packet(1, 1, HIGH, Some(HIGH), t2).forward);
    }

    #[test]
    fn switching_back_before_the_keyframe_asks_for_the_layer_switched_back_to() {
        let t0 = Instant::now();
        let mut s = LayerSwitch::default();
        assert_eq!(s.on_packet(1, 0, LOW, Some(LOW), t0).ask_keyframe, Some(1));
        let t1 = t0 + Duration::from_millis(50);
        let back = s.on_packet(0, 0, LOW, Some(LOW), t1);
        assert_eq!(back.ask_keyframe, Some(0));
        assert!(back.forward);
        assert_eq!(s.last_kf_request, Some(t1));
        // The high layer is neither wanted nor shown any more.
        assert!(!s.on_packet(0, 1, HIGH, Some(LOW), t1).forward);
    }
}
