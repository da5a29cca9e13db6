//! Per-subscriber forwarding helpers: keeping a forwarded stream's sequence numbers and
//! timestamps continuous across simulcast layer switches, spotting keyframes (a subscriber
//! may only switch layers on one), and naming simulcast layers from their RIDs.

use huddle_signaling::Layer;

/// Rewrites sequence numbers and timestamps so a subscriber sees one continuous stream even
/// when the SFU switches the layer (and so the source stream) it forwards.
#[derive(Debug, Clone, Default)]
pub struct Rewriter {
    seq_offset: u16,
    ts_offset: u32,
    last_seq: u16,
    last_ts: u32,
    started: bool,
    rebase: bool,
}

impl Rewriter {
    /// The next packet comes from another source stream; number it right after the last one.
    pub fn switch_source(&mut self) {
        self.rebase = self.started;
    }

    /// Maps a source packet's `(seq, ts)` to the forwarded stream's. `frame_gap` is the
    /// timestamp step put between the last forwarded frame and the first of a new source.
    pub fn rewrite(&mut self, seq: u16, ts: u32, frame_gap: u32) -> (u16, u32) {
        if self.rebase {
            self.seq_offset = self.last_seq.wrapping_add(1).wrapping_sub(seq);
            self.ts_offset = self.last_ts.wrapping_add(frame_gap).wrapping_sub(ts);
            self.rebase = false;
        }
        let out = (seq.wrapping_add(self.seq_offset), ts.wrapping_add(self.ts_offset));
        // Only move forward: a late packet must not pull the rebase point back.
        if !self.started || is_newer(out.0, self.last_seq) {
            self.last_seq = out.0;
            self.last_ts = out.1;
        }
        self.started = true;
        out
    }
}

/// RFC 1982 serial comparison for 16-bit sequence numbers.
fn is_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// Video codecs the SFU can find keyframes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    Vp9,
    H264,
}

impl VideoCodec {
    pub fn from_mime(mime: &str) -> Option<Self> {
        match mime.to_ascii_lowercase().as_str() {
            "video/vp8" => Some(Self::Vp8),
            "video/vp9" => Some(Self::Vp9),
            "video/h264" => Some(Self::H264),
            _ => None,
        }
    }
}

/// True when the RTP payload starts a keyframe. Malformed payloads are simply not keyframes.
pub fn is_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_keyframe(payload),
        VideoCodec::Vp9 => vp9_keyframe(payload),
        VideoCodec::H264 => h264_keyframe(payload),
    }
}

/// RFC 7741: payload descriptor, then the VP8 frame header whose low bit is 0 on keyframes.
fn vp8_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let start_of_partition = first & 0x10 != 0;
    let partition_id = first & 0x07;
    if !start_of_partition || partition_id != 0 {
        return false;
    }
    let mut at = 1;
    if first & 0x80 != 0 {
        let Some(&ext) = payload.get(at) else {
            return false;
        };
        at += 1;
        if ext & 0x80 != 0 {
            let Some(&picture_id) = payload.get(at) else {
                return false;
            };
            at += if picture_id & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1;
        }
        if ext & 0x30 != 0 {
            at += 1;
        }
    }
    payload.get(at).is_some_and(|header| header & 0x01 == 0)
}

/// RFC 9628: the descriptor's P bit is clear and B set at the start of a keyframe.
fn vp9_keyframe(payload: &[u8]) -> bool {
    payload
        .first()
        .is_some_and(|&first| first & 0x40 == 0 && first & 0x08 != 0)
}

/// RFC 6184: an IDR slice or a parameter set, alone, aggregated (STAP-A) or starting a
/// fragment (FU-A).
fn h264_keyframe(payload: &[u8]) -> bool {
    let is_key_nal = |nal: u8| matches!(nal & 0x1f, 5 | 7);
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        24 => {
            let mut rest = &payload[1..];
            while rest.len() > 2 {
                let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                let Some(&nal) = rest.get(2) else {
                    return false;
                };
                if is_key_nal(nal) {
                    return true;
                }
                rest = rest.get(2 + len..).unwrap_or_default();
            }
            false
        }
        28 => payload.get(1).is_some_and(|&fu| fu & 0x80 != 0 && is_key_nal(fu)),
        _ => is_key_nal(first),
    }
}

/// Names a simulcast layer from its RID, given every RID the track announced. Browsers and
/// libraries use `q/h/f` (quarter, half, full), `l/m/h` or `0/1/2`; unknown names are ranked by
/// their order among the track's RIDs.
pub fn layer_of(rid: &str, all: &[String]) -> Layer {
    let quarter_half_full = all.iter().any(|r| r == "q" || r == "f");
    match rid {
        "q" | "l" | "low" | "0" => Layer::Low,
        "m" | "mid" | "medium" | "1" => Layer::Medium,
        "h" if quarter_half_full => Layer::Medium,
        "f" | "h" | "high" | "full" | "2" => Layer::High,
        _ => match all.iter().position(|r| r == rid) {
            Some(0) => Layer::Low,
            Some(1) => Layer::Medium,
            _ => Layer::High,
        },
    }
}

/// Removes every header extension of a packet about to be forwarded (the subscriber's leg
/// adds its own). The padding that aligned the removed extensions goes too: left behind, it
/// makes the packet's computed size larger than what is written once an extension is added
/// back, and the send fails.
pub fn strip_extensions(header: &mut rtc::rtp::header::Header) {
    header.extensions.clear();
    header.extension = false;
    header.extension_profile = 0;
    header.extensions_padding = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_continues_the_numbering() {
        let mut r = Rewriter::default();
        assert_eq!(r.rewrite(100, 9000, 3000), (100, 9000));
        assert_eq!(r.rewrite(101, 12000, 3000), (101, 12000));
        r.switch_source();
        // The new source numbers from somewhere else entirely.
        assert_eq!(r.rewrite(50_000, 1_000_000, 3000), (102, 15000));
        assert_eq!(r.rewrite(50_001, 1_003_000, 3000), (103, 18000));
        // A late packet maps consistently and does not move the rebase point back.
        assert_eq!(r.rewrite(49_999, 997_000, 3000), (101, 12000));
        r.switch_source();
        assert_eq!(r.rewrite(7, 7, 3000), (104, 21000));
    }

    #[test]
    fn numbering_wraps() {
        let mut r = Rewriter::default();
        assert_eq!(r.rewrite(u16::MAX, u32::MAX, 3000), (u16::MAX, u32::MAX));
        r.switch_source();
        assert_eq!(r.rewrite(10, 10, 3000), (0, 2999));
    }

    #[test]
    fn vp8_keyframes_are_found_behind_any_descriptor() {
        assert!(is_keyframe(VideoCodec::Vp8, &[0x10, 0x00]));
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x10, 0x01]), "inter frame");
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x00, 0x00]), "not a partition start");
        // X set, I with a 15-bit picture id, L and T/K bytes.
        assert!(is_keyframe(
            VideoCodec::Vp8,
            &[0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x00]
        ));
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x90, 0xe0, 0x81]), "truncated");
        assert!(!is_keyframe(VideoCodec::Vp8, &[]));
    }

    #[test]
    fn vp9_and_h264_keyframes() {
        assert!(is_keyframe(VideoCodec::Vp9, &[0x08]));
        assert!(!is_keyframe(VideoCodec::Vp9, &[0x48]));
        assert!(is_keyframe(VideoCodec::H264, &[0x65]), "IDR");
        assert!(is_keyframe(VideoCodec::H264, &[0x67]), "SPS");
        assert!(!is_keyframe(VideoCodec::H264, &[0x41]), "non-IDR slice");
        assert!(is_keyframe(
            VideoCodec::H264,
            &[0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68]
        ));
        assert!(is_keyframe(VideoCodec::H264, &[0x7c, 0x85]), "FU-A start of an IDR");
        assert!(!is_keyframe(VideoCodec::H264, &[0x7c, 0x05]), "FU-A continuation");
        assert!(!is_keyframe(VideoCodec::H264, &[0x18, 0xff, 0xff]), "truncated STAP-A");
    }

    #[test]
    fn arbitrary_payloads_never_panic_the_keyframe_parsers() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            for codec in [VideoCodec::Vp8, VideoCodec::Vp9, VideoCodec::H264] {
                let _ = is_keyframe(codec, &payload);
            }
            let _ = crate::demux::stun_local_ufrag(&payload);
            let mut stun = vec![0x00, 0x01, 0x00, len as u8, 0x21, 0x12, 0xa4, 0x42];
            stun.extend_from_slice(&[0; 12]);
            stun.extend_from_slice(&payload);
            let _ = crate::demux::stun_local_ufrag(&stun);
        }
    }

    #[test]
    fn layers_are_named_from_common_rid_schemes() {
        let qhf: Vec<String> = ["q", "h", "f"].map(String::from).into();
        let lmh: Vec<String> = ["l", "m", "h"].map(String::from).into();
        assert_eq!(layer_of("h", &qhf), Layer::Medium);
        assert_eq!(layer_of("h", &lmh), Layer::High);
        assert_eq!(layer_of("q", &qhf), Layer::Low);
        let odd: Vec<String> = ["a", "b", "c"].map(String::from).into();
        assert_eq!(layer_of("a", &odd), Layer::Low);
        assert_eq!(layer_of("b", &odd), Layer::Medium);
        assert_eq!(layer_of("c", &odd), Layer::High);
    }

    #[test]
    fn stripped_packets_marshal_to_their_computed_size_once_an_extension_is_added() {
        use rtc::shared::marshal::{Marshal, MarshalSize, Unmarshal};
        // A browser's video packet carrying only transport-cc (one-byte form: 1 byte of
        // header, 2 of payload, 1 of padding to the 32-bit boundary).
        let mut raw = vec![0x90, 96, 0x12, 0x34, 0, 0, 0x10, 0, 0xde, 0xad, 0xbe, 0xef];
        raw.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x31, 0x00, 0x07, 0x00]);
        raw.extend_from_slice(&[1, 2, 3, 4]);
        let mut header = rtc::rtp::header::Header::unmarshal(&mut raw.as_slice()).expect("a valid header");
        assert_eq!(header.extensions_padding, 1);
        strip_extensions(&mut header);
        // The subscriber's leg adds its own transport-wide sequence number.
        header
            .set_extension(3, bytes::Bytes::from_static(&[0x00, 0x09]))
            .expect("extension set");
        let mut buf = vec![0u8; header.marshal_size()];
        let written = header.marshal_to(&mut buf).expect("marshals");
        assert_eq!(written, header.marshal_size());
    }
}
