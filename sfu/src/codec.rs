//! The video codecs the SFU forwards, and finding keyframes in their RTP payloads: a new
//! subscriber starts on one, and a simulcast layer switch waits for one.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
