//! What the client sends: an Opus track, a VP8 (or VP9, H.264) track, plain or as three
//! simulcast layers, and a screen track, all of caller-made RTP; and keyframe requests for
//! the tracks it receives.

use std::time::Instant;

use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};

use super::{AUDIO_PAYLOAD_TYPE, ClientConfig, ClientPeer, MediaKind, VIDEO_PAYLOAD_TYPE, codec};
use crate::connection::AUDIO_LEVEL_URI;

/// The simulcast RIDs a client sends, lowest first.
pub const SIMULCAST_RIDS: [&str; 3] = ["q", "h", "f"];
const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

#[derive(Debug, Clone)]
pub(super) struct SimulcastTrack {
    sender: RTCRtpSenderId,
    /// `(rid, ssrc, next sequence number)`, lowest layer first.
    layers: Vec<(String, u32, u16)>,
    timestamp: u32,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct LocalTrack {
    sender: RTCRtpSenderId,
    ssrc: u32,
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    step: u32,
}

/// The client's own tracks, as added to its connection.
pub(super) struct LocalTracks {
    pub audio: Option<LocalTrack>,
    pub video: Option<LocalTrack>,
    pub screen: Option<LocalTrack>,
    pub simulcast: Option<SimulcastTrack>,
}

impl LocalTracks {
    pub(super) fn add(pc: &mut RTCPeerConnection, config: &ClientConfig) -> Result<Self, rtc::shared::error::Error> {
        let mut add = |kind: RtpCodecKind, suffix: &str, codec: RTCRtpCodec, pt: u8, step: u32| {
            let ssrc = rand::random::<u32>();
            let track = MediaStreamTrack::new(
                format!("{}-stream", config.name),
                format!("{}-{suffix}", config.name),
                format!("{}-{suffix}", config.name),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec,
                    ..Default::default()
                }],
            );
            pc.add_track(track).map(|sender| LocalTrack {
                sender,
                ssrc,
                payload_type: pt,
                seq: rand::random(),
                timestamp: rand::random(),
                step,
            })
        };
        let audio = if config.audio {
            Some(add(
                RtpCodecKind::Audio,
                "audio",
                codec(MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1"),
                AUDIO_PAYLOAD_TYPE,
                960,
            )?)
        } else {
            None
        };
        let video_codec = codec(config.video_codec.mime(), 90_000, 0, config.video_codec.fmtp());
        let mut add_video = |enabled: bool, suffix: &str| {
            enabled
                .then(|| {
                    add(
                        RtpCodecKind::Video,
                        suffix,
                        video_codec.clone(),
                        VIDEO_PAYLOAD_TYPE,
                        3000,
                    )
                })
                .transpose()
        };
        let video = add_video(config.video && !config.simulcast, "video")?;
        let screen = add_video(config.screen, "screen")?;
        let simulcast = if config.video && config.simulcast {
            let layers: Vec<(String, u32, u16)> = SIMULCAST_RIDS
                .iter()
                .map(|rid| (rid.to_string(), rand::random::<u32>(), rand::random::<u16>()))
                .collect();
            let track = MediaStreamTrack::new(
                format!("{}-stream", config.name),
                format!("{}-video", config.name),
                format!("{}-video", config.name),
                RtpCodecKind::Video,
                layers
                    .iter()
                    .map(|(rid, ssrc, _)| RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            rid: rid.clone(),
                            ssrc: Some(*ssrc),
                            ..Default::default()
                        },
                        codec: codec(config.video_codec.mime(), 90_000, 0, config.video_codec.fmtp()),
                        ..Default::default()
                    })
                    .collect(),
            );
            Some(SimulcastTrack {
                sender: pc.add_track(track)?,
                layers,
                timestamp: rand::random(),
            })
        } else {
            None
        };
        Ok(Self {
            audio,
            video,
            screen,
            simulcast,
        })
    }
}

impl ClientPeer {
    /// Sends one RTP packet of `kind` with `payload`; a frame per call.
    pub fn send(&mut self, now: Instant, kind: MediaKind, payload: Bytes) -> Result<(), rtc::shared::error::Error> {
        if !self.connected {
            // Like a browser, it sends no media before its connection is up: there are no
            // SRTP keys yet.
            return Ok(());
        }
        let track = match kind {
            MediaKind::Audio => self.audio.as_mut(),
            MediaKind::Video => self.video.as_mut(),
            MediaKind::Screen => self.screen.as_mut(),
        };
        let Some(track) = track else {
            return Ok(());
        };
        let packet = Packet {
            header: Header {
                version: 2,
                marker: true,
                payload_type: track.payload_type,
                sequence_number: track.seq,
                timestamp: track.timestamp,
                ssrc: track.ssrc,
                ..Default::default()
            },
            payload,
        };
        track.seq = track.seq.wrapping_add(1);
        track.timestamp = track.timestamp.wrapping_add(track.step);
        let sender = track.sender;
        if let Some(mut sender) = self.pc.rtp_sender(sender) {
            sender.write_rtp(now, packet)?;
        }
        self.drain(now);
        Ok(())
    }

    /// Sends one frame on simulcast layer `layer` (0 lowest; see [`SIMULCAST_RIDS`]), tagged
    /// with its MID and RID as browsers do.
    pub fn send_layer(&mut self, now: Instant, layer: usize, payload: Bytes) -> Result<(), rtc::shared::error::Error> {
        if !self.connected {
            // Like a browser, it sends no media before its connection is up: there are no
            // SRTP keys yet.
            return Ok(());
        }
        let Some(track) = self.simulcast.as_mut() else {
            return Ok(());
        };
        let Some((rid, ssrc, seq)) = track.layers.get_mut(layer) else {
            return Ok(());
        };
        let sender = track.sender;
        let transceivers: Vec<_> = self.pc.get_transceivers().collect();
        let mid = transceivers.into_iter().find_map(|t| {
            let handle = self.pc.rtp_transceiver(t)?;
            (handle.sender() == Some(sender))
                .then(|| handle.mid().clone())
                .flatten()
        });
        let ids = self.pc.rtp_sender(sender).map(|mut s| {
            let exts = &s.get_parameters().rtp_parameters.header_extensions;
            let id = |uri: &str| exts.iter().find(|e| e.uri == uri).map(|e| e.id as u8);
            (id(MID_URI), id(RID_URI))
        });
        let mut header = Header {
            version: 2,
            marker: true,
            payload_type: VIDEO_PAYLOAD_TYPE,
            sequence_number: *seq,
            timestamp: track.timestamp,
            ssrc: *ssrc,
            ..Default::default()
        };
        if let (Some((Some(mid_id), Some(rid_id))), Some(mid)) = (ids, mid) {
            header.set_extension(mid_id, Bytes::from(mid.into_bytes()))?;
            header.set_extension(rid_id, Bytes::from(rid.clone().into_bytes()))?;
        }
        *seq = seq.wrapping_add(1);
        if layer + 1 == track.layers.len() {
            track.timestamp = track.timestamp.wrapping_add(3000);
        }
        if let Some(mut sender) = self.pc.rtp_sender(sender) {
            sender.write_rtp(now, Packet { header, payload })?;
        }
        self.drain(now);
        Ok(())
    }

    /// Sends an audio packet carrying an RFC 6464 level (0 loudest, 127 silence).
    pub fn send_audio_with_level(
        &mut self,
        now: Instant,
        level: u8,
        payload: Bytes,
    ) -> Result<(), rtc::shared::error::Error> {
        if !self.connected {
            // Like a browser, it sends no media before its connection is up: there are no
            // SRTP keys yet.
            return Ok(());
        }
        let Some(track) = self.audio.as_mut() else {
            return Ok(());
        };
        let sender = track.sender;
        let ext_id = self.pc.rtp_sender(sender).and_then(|mut s| {
            s.get_parameters()
                .rtp_parameters
                .header_extensions
                .iter()
                .find(|e| e.uri == AUDIO_LEVEL_URI)
                .map(|e| e.id as u8)
        });
        let mut header = Header {
            version: 2,
            marker: false,
            payload_type: track.payload_type,
            sequence_number: track.seq,
            timestamp: track.timestamp,
            ssrc: track.ssrc,
            ..Default::default()
        };
        if let Some(id) = ext_id {
            header.set_extension(id, Bytes::copy_from_slice(&[0x80 | (level & 0x7f)]))?;
        }
        track.seq = track.seq.wrapping_add(1);
        track.timestamp = track.timestamp.wrapping_add(track.step);
        if let Some(mut sender) = self.pc.rtp_sender(sender) {
            sender.write_rtp(now, Packet { header, payload })?;
        }
        self.drain(now);
        Ok(())
    }

    /// Asks the SFU for a keyframe of a received track.
    pub fn request_keyframe(&mut self, now: Instant, track_id: &str) -> Result<(), rtc::shared::error::Error> {
        let Some(track) = self.remote.get(track_id) else {
            return Ok(());
        };
        let (receiver, media_ssrc) = (track.receiver, track.ssrc);
        if let Some(mut receiver) = self.pc.rtp_receiver(receiver) {
            receiver.write_rtcp(
                now,
                vec![Box::new(PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc,
                })],
            )?;
        }
        self.drain(now);
        Ok(())
    }
}
