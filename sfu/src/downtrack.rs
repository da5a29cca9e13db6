//! A down track: one published track on its way to one subscriber. It holds what that leg
//! negotiated (payload types, the MID), how far its negotiation has come, the numbering it
//! keeps continuous, and the simulcast layer it forwards; [`DownTrack::forward`] turns a
//! publisher's packet into the copy this subscriber gets, or into nothing.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use huddle_signaling::Layer;
use log::trace;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp::Packet;
use rtc::rtp::header::Header;
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverId};
use rtc::shared::marshal::{Marshal, MarshalSize};
use rtc::shared::time::SystemInstant;

use crate::layer::{Admit, LayerSwitch};
use crate::munger::Munger;
use crate::srtp::SendIndex;
use crate::{ParticipantId, TrackId};

/// The stream id subscribers see for a participant's tracks.
pub fn stream_id(owner: ParticipantId) -> String {
    owner.to_string()
}

/// The track id subscribers see for a published track.
pub fn track_label(track: TrackId) -> String {
    track.to_string()
}

/// How far a down track has come. Nothing is forwarded before the subscriber answered the
/// offer that describes it (it could not place the packets), and video nothing before a
/// keyframe (what comes before could not be decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// On the connection; no SFU offer has described it yet.
    Unoffered,
    /// Described by the SFU's offer `offer_id`, not answered yet.
    Offered {
        offer_id: u64,
    },
    /// Answered at `answered_at`; waits for the first keyframe.
    AwaitingKeyframe {
        answered_at: Instant,
    },
    Forwarding,
}

/// A publisher's packet as every down track of its track sees it.
#[derive(Debug)]
pub(crate) struct Incoming<'a> {
    /// Its header extensions already taken off.
    pub packet: &'a Packet,
    pub keyframe: bool,
    pub simulcast: bool,
    /// See [`Publication::frame_gap`](crate::publication::Publication::frame_gap).
    pub frame_gap: u32,
    /// The codec, which the subscriber's leg may number differently.
    pub mime_type: &'a str,
}

/// How a packet goes to a down track: see [`DownTrack::admit`].
struct Admitted {
    pt: u8,
    seq: u16,
    ts: u32,
    switched: bool,
}

/// A direct track's copy, written into its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirectCopy {
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    /// The buffer's first bytes are the header, then the payload.
    pub header_len: usize,
    pub switched: bool,
}

/// A direct track's RTP header, marshalled once: version 2, its SSRC, its MID extension.
#[derive(Debug)]
struct WireHeader {
    bytes: [u8; WIRE_HEADER_MAX],
    len: usize,
}

/// Room for the fixed header and a MID of up to 16 bytes in one-byte extension form.
const WIRE_HEADER_MAX: usize = 40;

impl WireHeader {
    /// `None` when the header does not fit (a MID longer than a one-byte extension holds).
    fn new(ssrc: u32, mid: Option<&(u8, Bytes)>) -> Option<Self> {
        let mut header = Header {
            version: 2,
            ssrc,
            ..Default::default()
        };
        if let Some((id, value)) = mid
            && let Err(err) = header.set_extension(*id, value.clone())
        {
            trace!("MID extension {id} on forwarded packets: {err}");
        }
        let len = header.marshal_size();
        let mut bytes = [0u8; WIRE_HEADER_MAX];
        header.marshal_to(bytes.get_mut(..len)?).ok()?;
        Some(Self { bytes, len })
    }
}

/// A copy to send on a down track.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub packet: Packet,
    /// It begins another layer of a simulcast track.
    pub switched: bool,
}

#[derive(Debug)]
pub(crate) struct DownTrack {
    pub transceiver: RTCRtpTransceiverId,
    pub sender: RTCRtpSenderId,
    /// The SSRC this leg sends with.
    ssrc: u32,
    /// Whether the track starts on a keyframe (video in a codec the SFU can read).
    starts_on_keyframe: bool,
    stage: Stage,
    /// The MID header extension every copy carries, as the subscriber's leg negotiated it.
    mid: Option<(u8, Bytes)>,
    /// Publisher payload type -> this leg's (`None`: the codec was not negotiated here).
    payload_types: Vec<(u8, Option<u8>)>,
    munger: Munger,
    /// The highest layer the subscriber asked for.
    pub wanted: Layer,
    layer: LayerSwitch,
    /// Sent straight to the socket, past the connection's send pipeline (see
    /// [`DownTrack::direct`]), with this track's RTP clock rate; `None`: through the pipeline.
    direct: Option<u32>,
    /// The header of a direct track's copies as it goes on the wire, built when the answer
    /// settled its MID; each copy patches in its numbering.
    wire_header: Option<WireHeader>,
    /// The last publisher payload type seen and this leg's for it (most tracks have one).
    last_payload_type: Option<(u8, Option<u8>)>,
    /// What went out directly, for the sender reports the pipeline no longer makes for it.
    sent: SentCounts,
    /// The SRTP packet index of what the SFU protects itself on this track.
    pub srtp_index: SendIndex,
}

/// What a directly sent down track put on the wire: the packet and octet counts and the
/// newest RTP timestamp with when it left, which a sender report maps to wall-clock time.
#[derive(Debug, Default)]
struct SentCounts {
    packets: u32,
    octets: u32,
    newest: Option<(u32, Instant)>,
}

impl DownTrack {
    pub fn new(transceiver: RTCRtpTransceiverId, sender: RTCRtpSenderId, ssrc: u32, starts_on_keyframe: bool) -> Self {
        Self {
            transceiver,
            sender,
            ssrc,
            starts_on_keyframe,
            stage: Stage::Unoffered,
            mid: None,
            payload_types: Vec::new(),
            munger: Munger::default(),
            wanted: Layer::High,
            layer: LayerSwitch::default(),
            direct: None,
            wire_header: None,
            last_payload_type: None,
            sent: SentCounts::default(),
            srtp_index: SendIndex::default(),
        }
    }

    /// Sends this track's copies straight to the socket: each is protected with the
    /// connection's SRTP context and leaves with the datagram that brought it, with none of
    /// the send pipeline's per-packet work (its interceptors keep a NACK history, a
    /// transport-wide sequence number and sender-report counts). For audio: it is never
    /// retransmitted or paced, and the downlink estimate follows video; the SFU makes this
    /// track's sender reports itself ([`DownTrack::sender_report`]). `clock_rate` is its
    /// codec's RTP clock.
    pub fn direct(mut self, clock_rate: u32) -> Self {
        self.direct = Some(clock_rate);
        self
    }

    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// A copy of `payload_len` payload bytes with RTP timestamp `timestamp` went out directly.
    pub fn sent_directly(&mut self, now: Instant, timestamp: u32, payload_len: usize) {
        let sent = &mut self.sent;
        sent.packets = sent.packets.wrapping_add(1);
        sent.octets = sent.octets.wrapping_add(u32::try_from(payload_len).unwrap_or(u32::MAX));
        if sent.newest.is_none_or(|(ts, _)| ts != timestamp) {
            sent.newest = Some((timestamp, now));
        }
    }

    /// The sender report for a directly sent track, once it sent anything: its counts, and
    /// its RTP clock extrapolated from the newest packet to `now` beside `now` in NTP time.
    pub fn sender_report(&self, now: Instant, wall_clock: &SystemInstant) -> Option<SenderReport> {
        let clock_rate = self.direct?;
        let (timestamp, at) = self.sent.newest?;
        let elapsed = now.saturating_duration_since(at).as_secs_f64() * f64::from(clock_rate);
        // The RTP clock wraps: so does its extrapolation.
        let rtp_time = timestamp.wrapping_add(elapsed as u64 as u32);
        Some(SenderReport {
            ssrc: self.ssrc,
            ntp_time: wall_clock.ntp(now),
            rtp_time,
            packet_count: self.sent.packets,
            octet_count: self.sent.octets,
            ..Default::default()
        })
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Answered for: the subscriber can place its packets.
    pub fn is_answered(&self) -> bool {
        matches!(self.stage, Stage::AwaitingKeyframe { .. } | Stage::Forwarding)
    }

    pub fn awaits_keyframe(&self) -> bool {
        matches!(self.stage, Stage::AwaitingKeyframe { .. })
    }

    /// The SFU's offer `offer_id` describes this track (again, if an earlier offer was
    /// withdrawn before its answer).
    pub fn offered(&mut self, offer_id: u64) {
        if !self.is_answered() {
            self.stage = Stage::Offered { offer_id };
        }
    }

    /// The subscriber answered `offer_id`. Returns true when that answer covers this track:
    /// from now on its copies carry `mid` (the MID extension's id and value), with payload
    /// types as the answer settled them.
    pub fn answered(&mut self, now: Instant, offer_id: u64, mid: Option<(u8, Bytes)>) -> bool {
        if self.stage != (Stage::Offered { offer_id }) {
            return false;
        }
        self.stage = if self.starts_on_keyframe {
            Stage::AwaitingKeyframe { answered_at: now }
        } else {
            Stage::Forwarding
        };
        self.mid = mid;
        self.payload_types.clear();
        self.last_payload_type = None;
        if self.direct.is_some() {
            self.wire_header = WireHeader::new(self.ssrc, self.mid.as_ref());
            if self.wire_header.is_none() {
                // A MID too long for the kept header: the pipeline sends this track.
                self.direct = None;
            }
        }
        true
    }

    pub fn current_layer(&self) -> Option<u32> {
        self.layer.current()
    }

    pub fn target_layer(&self) -> Option<u32> {
        self.layer.target()
    }

    /// Chooses simulcast layer `ssrc`. Returns true when the choice changed.
    pub fn retarget(&mut self, ssrc: u32) -> bool {
        self.layer.retarget(ssrc)
    }

    /// Whether `incoming` goes to this subscriber, and with what numbering: this leg's
    /// payload type, sequence number and timestamp, and whether it begins another simulcast
    /// layer. `payload_type` finds this leg's payload type for a codec; its answer is kept.
    fn admit(&mut self, incoming: &Incoming<'_>, payload_type: impl FnOnce(&str) -> Option<u8>) -> Option<Admitted> {
        if !self.is_answered() || (self.awaits_keyframe() && !incoming.keyframe) {
            return None;
        }
        let header = &incoming.packet.header;
        let pt = match self.last_payload_type {
            Some((from, pt)) if from == header.payload_type => pt,
            _ => {
                let pt = match self.payload_types.iter().find(|(from, _)| *from == header.payload_type) {
                    Some((_, pt)) => *pt,
                    None => {
                        let pt = payload_type(incoming.mime_type);
                        self.payload_types.push((header.payload_type, pt));
                        pt
                    }
                };
                self.last_payload_type = Some((header.payload_type, pt));
                pt
            }
        }?;
        let mut switched = false;
        if incoming.simulcast {
            match self.layer.admit(header.ssrc, incoming.keyframe) {
                Admit::Drop => return None,
                Admit::Forward => {}
                Admit::Switched => {
                    self.munger.switch_source();
                    switched = true;
                }
            }
        }
        let (seq, ts) = self
            .munger
            .rewrite(header.sequence_number, header.timestamp, incoming.frame_gap);
        Some(Admitted { pt, seq, ts, switched })
    }

    /// The copy of `incoming` this subscriber gets, if any, to hand to the connection.
    /// `payload_type` finds this leg's payload type for a codec.
    pub fn forward(
        &mut self,
        incoming: &Incoming<'_>,
        payload_type: impl FnOnce(&str) -> Option<u8>,
    ) -> Option<Outgoing> {
        let admitted = self.admit(incoming, payload_type)?;
        let mut packet = incoming.packet.clone();
        packet.header.payload_type = admitted.pt;
        packet.header.ssrc = self.ssrc;
        packet.header.sequence_number = admitted.seq;
        packet.header.timestamp = admitted.ts;
        if let Some((id, value)) = &self.mid
            && let Err(err) = packet.header.set_extension(*id, value.clone())
        {
            trace!("MID extension {id} on a forwarded packet: {err}");
        }
        Some(Outgoing {
            packet,
            switched: admitted.switched,
        })
    }

    /// For a direct track: writes the copy of `incoming` this subscriber gets, if any, into
    /// `buf` as an RTP packet (with room for an SRTP tag after it). The header (this leg's
    /// SSRC and MID) was built at the answer; the copy patches in its numbering.
    pub fn forward_direct(
        &mut self,
        incoming: &Incoming<'_>,
        payload_type: impl FnOnce(&str) -> Option<u8>,
        buf: &mut BytesMut,
    ) -> Option<DirectCopy> {
        let admitted = self.admit(incoming, payload_type)?;
        let wire = self.wire_header.as_ref()?;
        let payload = &incoming.packet.payload;
        let header = &wire.bytes[..wire.len];
        buf.clear();
        buf.reserve(header.len() + payload.len() + crate::srtp::TAG_LEN);
        buf.extend_from_slice(header);
        buf[1] = (u8::from(incoming.packet.header.marker) << 7) | (admitted.pt & 0x7f);
        buf[2..4].copy_from_slice(&admitted.seq.to_be_bytes());
        buf[4..8].copy_from_slice(&admitted.ts.to_be_bytes());
        buf.extend_from_slice(payload);
        Some(DirectCopy {
            ssrc: self.ssrc,
            seq: admitted.seq,
            timestamp: admitted.ts,
            header_len: header.len(),
            switched: admitted.switched,
        })
    }

    /// A copy went out. Returns how long after the answer it came when it was the first
    /// keyframe, which starts the track.
    pub fn delivered(&mut self, now: Instant, keyframe: bool) -> Option<Duration> {
        match self.stage {
            Stage::AwaitingKeyframe { answered_at } if keyframe => {
                self.stage = Stage::Forwarding;
                Some(now.saturating_duration_since(answered_at))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one real `Instant` as the virtual clock's epoch
mod tests {
    use super::*;
    use rtc::rtp::header::Header;

    const PT: u8 = 102;

    fn packet(ssrc: u32, seq: u16, ts: u32) -> Packet {
        Packet {
            header: Header {
                version: 2,
                payload_type: 96,
                sequence_number: seq,
                timestamp: ts,
                ssrc,
                ..Default::default()
            },
            payload: Bytes::from_static(b"frame"),
        }
    }

    fn incoming(packet: &Packet, keyframe: bool, simulcast: bool) -> Incoming<'_> {
        Incoming {
            packet,
            keyframe,
            simulcast,
            frame_gap: 3000,
            mime_type: "video/VP8",
        }
    }

    fn answered_video(now: Instant) -> DownTrack {
        let mut track = DownTrack::new(0, RTCRtpSenderId::default(), 0xabc, true);
        track.offered(1);
        assert!(!track.answered(now, 2, None), "another offer's answer");
        assert!(track.answered(now, 1, Some((4, Bytes::from_static(b"0")))));
        track
    }

    #[test]
    fn nothing_goes_before_the_answer_and_video_starts_on_a_keyframe() {
        let t0 = Instant::now();
        let mut track = DownTrack::new(0, RTCRtpSenderId::default(), 0xabc, true);
        let p = packet(1, 100, 9000);
        assert!(track.forward(&incoming(&p, true, false), |_| Some(PT)).is_none());
        track.offered(1);
        assert!(track.forward(&incoming(&p, true, false), |_| Some(PT)).is_none());
        assert!(track.answered(t0, 1, Some((4, Bytes::from_static(b"0")))));
        assert!(track.forward(&incoming(&p, false, false), |_| Some(PT)).is_none());
        let copy = track
            .forward(&incoming(&p, true, false), |_| Some(PT))
            .expect("the keyframe");
        assert_eq!((copy.packet.header.ssrc, copy.packet.header.payload_type), (0xabc, PT));
        assert_eq!(copy.packet.header.get_extension(4), Some(Bytes::from_static(b"0")));
        let later = t0 + Duration::from_millis(30);
        assert_eq!(track.delivered(later, true), Some(Duration::from_millis(30)));
        assert_eq!(track.delivered(later, true), None, "only the first");
        assert!(track.forward(&incoming(&p, false, false), |_| Some(PT)).is_some());
    }

    #[test]
    fn a_direct_copy_is_a_whole_rtp_packet_renumbered_with_the_mid_and_counted_for_sender_reports() {
        use rtc::shared::marshal::Unmarshal;
        let t0 = Instant::now();
        let mut track = DownTrack::new(0, RTCRtpSenderId::default(), 0xabc, false).direct(48_000);
        assert!(track.is_direct());
        track.offered(1);
        assert!(track.answered(t0, 1, Some((4, Bytes::from_static(b"a1")))));
        let wall = SystemInstant::now(t0);
        assert!(
            track.sender_report(t0, &wall).is_none(),
            "nothing sent, nothing to report"
        );
        let mut buf = BytesMut::new();
        let mut packets = [packet(7, 100, 9600), packet(7, 101, 10560)];
        packets[1].header.marker = true;
        let mut numbers = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            let audio = Incoming {
                mime_type: "audio/opus",
                ..incoming(p, false, false)
            };
            let copy = track.forward_direct(&audio, |_| Some(111), &mut buf).unwrap();
            assert!(!copy.switched);
            let written = Packet::unmarshal(&mut &buf[..]).unwrap();
            assert_eq!(
                (
                    written.header.ssrc,
                    written.header.sequence_number,
                    written.header.timestamp
                ),
                (copy.ssrc, copy.seq, copy.timestamp),
                "the bytes carry the numbering returned"
            );
            assert_eq!(buf.len() - copy.header_len, written.payload.len());
            assert_eq!((written.header.ssrc, written.header.payload_type), (0xabc, 111));
            assert_eq!(written.header.marker, p.header.marker);
            assert_eq!(written.header.get_extension(4), Some(Bytes::from_static(b"a1")));
            assert_eq!(written.payload, Bytes::from_static(b"frame"));
            numbers.push((written.header.sequence_number, written.header.timestamp));
            track.sent_directly(
                t0 + Duration::from_millis(20 * i as u64),
                written.header.timestamp,
                written.payload.len(),
            );
        }
        assert_eq!(numbers[1].0, numbers[0].0.wrapping_add(1));
        assert_eq!(numbers[1].1, numbers[0].1.wrapping_add(960));
        // 30 ms after the newest packet: its timestamp plus 30 ms of a 48 kHz clock.
        let at = t0 + Duration::from_millis(50);
        let report = track
            .sender_report(at, &wall)
            .expect("a report once something went out");
        assert_eq!((report.ssrc, report.packet_count, report.octet_count), (0xabc, 2, 10));
        assert_eq!(report.rtp_time, numbers[1].1.wrapping_add(1440));
        assert_eq!(report.ntp_time, wall.ntp(at));
        assert!(
            DownTrack::new(0, RTCRtpSenderId::default(), 1, false)
                .sender_report(at, &wall)
                .is_none(),
            "the pipeline reports a track it sends"
        );
    }

    #[test]
    fn a_codec_the_leg_did_not_negotiate_is_not_forwarded_and_asked_about_once() {
        let mut track = answered_video(Instant::now());
        let p = packet(1, 100, 9000);
        let mut asked = 0;
        for _ in 0..3 {
            let copy = track.forward(&incoming(&p, true, false), |_| {
                asked += 1;
                None
            });
            assert!(copy.is_none());
        }
        assert_eq!(asked, 1);
    }

    #[test]
    fn a_layer_switch_waits_for_a_keyframe_and_keeps_the_numbering() {
        let mut track = answered_video(Instant::now());
        let (low, high) = (10, 30);
        assert!(track.retarget(high));
        let copy = track
            .forward(&incoming(&packet(high, 500, 1000), true, true), |_| Some(PT))
            .unwrap();
        assert!(copy.switched, "the first layer is a switch too");
        track.delivered(Instant::now(), true);
        let first = copy.packet.header.sequence_number;
        assert!(track.retarget(low));
        assert_eq!(track.current_layer(), Some(high));
        assert!(
            track
                .forward(&incoming(&packet(low, 7, 70), false, true), |_| Some(PT))
                .is_none(),
            "not before the low layer's keyframe"
        );
        let copy = track
            .forward(&incoming(&packet(high, 501, 4000), false, true), |_| Some(PT))
            .unwrap();
        assert_eq!(copy.packet.header.sequence_number, first.wrapping_add(1));
        let copy = track
            .forward(&incoming(&packet(low, 8, 80), true, true), |_| Some(PT))
            .unwrap();
        assert!(copy.switched);
        assert_eq!(copy.packet.header.sequence_number, first.wrapping_add(2));
        assert!(
            track
                .forward(&incoming(&packet(high, 502, 7000), true, true), |_| Some(PT))
                .is_none()
        );
    }
}
