//! Rewriting a forwarded packet's header for its subscriber: sequence numbers and timestamps
//! that stay continuous across simulcast layer switches, and the publisher's header extensions
//! taken off (the subscriber's leg adds its own).

/// Rewrites sequence numbers and timestamps so a subscriber sees one continuous stream even
/// when the SFU switches the layer (and so the source stream) it forwards.
#[derive(Debug, Clone, Default)]
pub struct Munger {
    seq_offset: u16,
    ts_offset: u32,
    last_seq: u16,
    last_ts: u32,
    started: bool,
    rebase: bool,
}

impl Munger {
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
        let mut r = Munger::default();
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
        let mut r = Munger::default();
        assert_eq!(r.rewrite(u16::MAX, u32::MAX, 3000), (u16::MAX, u32::MAX));
        r.switch_source();
        assert_eq!(r.rewrite(10, 10, 3000), (0, 2999));
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
