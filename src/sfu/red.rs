//! RFC 2198 redundant audio (RED) on the forwarding path: where a RED packet's primary block
//! starts, and which payload type a viewer gets for a publisher's packet. Pure functions, O(1)
//! in the packet (at most a few block headers read); they must never allocate or copy a
//! payload: a viewer that did not negotiate RED gets a slice of the packet it already holds.
//!
//! str0m 0.25 negotiates RED folded onto Opus (`CodecConfig::enable_opus(_, true)`, the RED
//! payload type before its primary in the m-line, as libwebrtc needs to send it) and, in RTP
//! mode, hands a RED packet over as it arrived: the main SSRC and sequence, the RED payload
//! type, the RED payload (`session.rs`, where only frame mode unwraps it). Written by hand:
//! str0m's own `RedDecoder` is for its frame mode and collects the blocks into a `Vec`.

use std::ops::Range;

use str0m::format::PayloadParams;
use str0m::media::Pt;

/// Where the primary (last, newest) block of RED payload `p` lies, or `None` if `p` is not
/// well-formed RED (a header runs past the end, or the blocks are longer than the packet).
///
/// Layout (RFC 2198 §3): one 4-byte header per redundant block (F bit set: 7-bit payload
/// type, 14-bit timestamp offset, 10-bit length), then a 1-byte header for the primary (F
/// bit clear), then the redundant blocks' data in order, then the primary's.
pub(crate) fn primary(p: &[u8]) -> Option<Range<usize>> {
    let mut at = 0;
    let mut redundant = 0usize;
    loop {
        let first = *p.get(at)?;
        if first & 0x80 == 0 {
            at += 1;
            break;
        }
        let hdr = p.get(at..at + 4)?;
        redundant += (usize::from(hdr[2] & 0x03) << 8) | usize::from(hdr[3]);
        at += 4;
    }
    let start = at.checked_add(redundant)?;
    (start <= p.len()).then_some(start..p.len())
}

/// A viewer's payload type for a packet the publisher sent in `pt`, given the publisher's
/// codec `params` and the viewer's matching codec `ours` (chosen by `pick_payload_type`):
/// (payload type, cut to the primary block). A RED packet goes on as RED to a viewer that
/// negotiated RED for that codec, and as its plain primary to one that did not.
pub(crate) fn out_pt(params: &PayloadParams, pt: Pt, ours: &PayloadParams) -> (Pt, bool) {
    if params.red() != Some(pt) {
        return (ours.pt(), false);
    }
    match ours.red() {
        Some(red) => (red, false),
        None => (ours.pt(), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One redundant block of 3 bytes (PT 111, offset 960) and a 2-byte primary.
    const RED: [u8; 10] = [
        0x80 | 111,
        (960 >> 6) as u8,
        ((960 & 0x3f) << 2) as u8,
        3,
        111,
        0xaa,
        0xbb,
        0xcc,
        0x11,
        0x22,
    ];

    #[test]
    fn the_primary_is_the_tail_after_the_headers_and_redundant_blocks() {
        assert_eq!(primary(&RED), Some(8..10));
        assert_eq!(&RED[primary(&RED).unwrap()], &[0x11, 0x22]);
        // No redundancy: one header byte, then the primary.
        assert_eq!(primary(&[111, 1, 2, 3]), Some(1..4));
        // An empty primary is still well-formed.
        assert_eq!(primary(&[111]), Some(1..1));
        // Two redundant blocks (lengths 1 and 2) and a 1-byte primary.
        let two = [0xef, 0, 0, 1, 0xef, 0, 0, 2, 111, 9, 8, 8, 7];
        assert_eq!(primary(&two), Some(12..13));
    }

    #[test]
    fn red_goes_on_as_red_or_as_its_primary() {
        use str0m::format::{Codec, CodecConfig};
        let opus = |red: bool| {
            let mut c = CodecConfig::empty();
            c.enable_opus(true, red);
            *c.params()
                .iter()
                .find(|p| p.spec().codec == Codec::Opus)
                .unwrap()
        };
        let (publisher, with_red, without) = (opus(true), opus(true), opus(false));
        let red = publisher.red().expect("RED folded onto Opus");
        assert_ne!(red, publisher.pt());
        // A RED packet: RED to a viewer that has it, cut to the primary for one that has not.
        assert_eq!(
            out_pt(&publisher, red, &with_red),
            (with_red.red().unwrap(), false)
        );
        assert_eq!(out_pt(&publisher, red, &without), (without.pt(), true));
        // A plain Opus packet goes on as Opus either way.
        assert_eq!(
            out_pt(&publisher, publisher.pt(), &with_red),
            (with_red.pt(), false)
        );
        assert_eq!(
            out_pt(&without, without.pt(), &with_red),
            (with_red.pt(), false)
        );
    }

    #[test]
    fn malformed_red_is_refused() {
        assert_eq!(primary(&[]), None);
        assert_eq!(primary(&[0x80 | 111, 0, 0]), None, "header cut short");
        assert_eq!(
            primary(&[0x80 | 111, 0, 0, 9, 111, 1]),
            None,
            "block past the end"
        );
        assert_eq!(primary(&[0x80, 0, 0, 0]), None, "no primary header");
    }
}

#[cfg(test)]
mod prop_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes: no panic, and a primary found lies inside the packet, after at least
        /// one header byte.
        #[test]
        fn primary_takes_any_bytes(p in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Some(r) = primary(&p) {
                prop_assert!(r.start >= 1 && r.start <= r.end && r.end == p.len());
            }
        }

        /// Well-formed RED built from blocks gives back exactly the primary.
        #[test]
        fn primary_of_built_red(
            blocks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..4),
            prim in prop::collection::vec(any::<u8>(), 0..80),
        ) {
            let mut p = Vec::new();
            for b in &blocks {
                p.extend_from_slice(&[0x80 | 111, 0, (b.len() >> 8) as u8 & 0x03, b.len() as u8]);
            }
            p.push(111);
            for b in &blocks {
                p.extend_from_slice(b);
            }
            p.extend_from_slice(&prim);
            let r = primary(&p).expect("well-formed");
            prop_assert_eq!(&p[r], &prim[..]);
        }
    }
}
