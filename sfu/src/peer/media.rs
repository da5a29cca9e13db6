//! A peer's media: the tracks its client publishes as they open, the down tracks it sends
//! (each packet forwarded to it goes through here), and the feedback it sends about them.

use std::collections::VecDeque;

use bytes::BytesMut;
use rtc::shared::marshal::Unmarshal;
use std::time::{Duration, Instant};

use huddle_signaling::TrackSource;
use log::{debug, trace, warn};
use rand::Rng;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use super::Peer;
use crate::Transmit;
use crate::connection::AUDIO_LEVEL_URI;
use crate::downtrack::{DownTrack, Incoming, stream_id, track_label};
use crate::publication::{OpenedTrack, Publication};
use crate::{TrackId, TrackKind};

/// How often a direct down track's sender report goes out (as the reports interceptor's).
const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// What a subscriber's RTCP about one of its down tracks asks for.
#[derive(Debug, Default)]
pub(crate) struct Feedback {
    pub keyframe: bool,
    /// Loss or REMB moved the layer cap of the subscriber's link.
    pub link_changed: bool,
}

/// A copy handed to the connection.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub sent: bool,
    /// It went straight to `transmits`: the connection has nothing new to send.
    pub direct: bool,
    pub switched: bool,
    /// Set-up time, when it was the first keyframe of the down track.
    pub first_keyframe: Option<Duration>,
}

impl Peer {
    /// A track the client publishes opened: what it is, if the SFU can forward it.
    pub fn open_track(&mut self, receiver: RTCRtpReceiverId, rtc_track_id: &str) -> Option<OpenedTrack> {
        let key = self.key;
        let mut handle = self.pc.rtp_receiver(receiver)?;
        let rtc_kind = handle.track().kind();
        let params = &handle.get_parameters().rtp_parameters;
        let Some(codec) = params.codecs.iter().find(|c| !c.rtp_codec.mime_type.ends_with("/rtx")) else {
            warn!("{key:?}: track {rtc_track_id} has no usable codec");
            return None;
        };
        let codec = codec.rtp_codec.clone();
        let audio_level_ext = params
            .header_extensions
            .iter()
            .find(|e| e.uri == AUDIO_LEVEL_URI)
            .and_then(|e| u8::try_from(e.id).ok());
        let source = self.sources.get(rtc_track_id).copied().unwrap_or(match rtc_kind {
            RtpCodecKind::Audio => TrackSource::Microphone,
            _ => TrackSource::Camera,
        });
        let kind = match source {
            TrackSource::Microphone | TrackSource::ScreenAudio => TrackKind::Audio,
            TrackSource::Camera => TrackKind::Video,
            TrackSource::Screen => TrackKind::Screen,
        };
        if (kind == TrackKind::Audio) != (rtc_kind == RtpCodecKind::Audio) {
            warn!("{key:?}: track {rtc_track_id} declared as {source:?} but is {rtc_kind}");
            return None;
        }
        Some(OpenedTrack {
            source,
            kind,
            codec,
            audio_level_ext,
        })
    }

    /// Adds a send-only transceiver for `track`. Returns false when there is one already, or
    /// the connection refused it.
    pub fn add_downtrack(&mut self, track: TrackId, publication: &Publication) -> bool {
        if self.downtracks.contains_key(&track) {
            return false;
        }
        let kind = if publication.kind == TrackKind::Audio {
            RtpCodecKind::Audio
        } else {
            RtpCodecKind::Video
        };
        let ssrc = rand::rng().random::<u32>();
        let label = track_label(track);
        let stream = stream_id(publication.owner);
        let media_track = MediaStreamTrack::new(
            stream.clone(),
            label.clone(),
            label.clone(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: publication.codec.clone(),
                ..Default::default()
            }],
        );
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            streams: vec![stream],
            send_encodings: vec![],
        };
        let transceiver = match self.pc.add_transceiver_from_track(media_track, Some(init)) {
            Ok(t) => t,
            Err(err) => {
                warn!("{:?}: cannot receive {track}: {err}", self.key);
                return false;
            }
        };
        let Some(sender) = self.pc.rtp_transceiver(transceiver).and_then(|t| t.sender()) else {
            warn!("{:?}: transceiver for {track} has no sender", self.key);
            return false;
        };
        let mut downtrack = DownTrack::new(transceiver, sender, ssrc, publication.has_keyframes());
        if publication.kind == TrackKind::Audio {
            downtrack = downtrack.direct(publication.codec.clock_rate);
        }
        self.downtracks.insert(track, downtrack);
        self.by_label.insert(label, track);
        self.negotiation.renegotiation_needed();
        true
    }

    /// Stops sending `track`. Returns false when this peer did not receive it.
    pub fn remove_downtrack(&mut self, track: TrackId) -> bool {
        let Some(downtrack) = self.downtracks.remove(&track) else {
            return false;
        };
        self.by_label.retain(|_, t| *t != track);
        if let Err(err) = self.pc.remove_track(downtrack.sender) {
            debug!("{:?}: remove {track}: {err}", self.key);
        }
        self.negotiation.renegotiation_needed();
        true
    }

    /// Re-decides which layer of `track` this peer gets, within what its link carries.
    /// Returns the layer to ask a keyframe of: a switch waits for one.
    pub fn reselect(&mut self, now: Instant, track: TrackId, publication: &Publication) -> Option<u32> {
        let allowed = self.link.max_layer(now);
        let live = self.is_connected();
        let downtrack = self.downtracks.get_mut(&track)?;
        let target = publication.pick(downtrack.wanted.min(allowed));
        let changed = downtrack.retarget(target);
        // A subscriber that cannot receive yet gets its keyframe when it goes live.
        (changed
            && live
            && downtrack.is_answered()
            && publication.has_keyframes()
            && downtrack.current_layer() != Some(target))
        .then_some(target)
    }

    /// Sends this peer its copy of a packet of `track`, if it gets one: into the connection,
    /// or, for a direct down track, protected and addressed into `transmits`.
    pub fn forward(
        &mut self,
        now: Instant,
        track: TrackId,
        incoming: &Incoming<'_>,
        transmits: &mut VecDeque<Transmit>,
    ) -> Option<Delivery> {
        if !self.is_connected() {
            return None;
        }
        let downtrack = self.downtracks.get_mut(&track)?;
        let sender = downtrack.sender;
        let pc = &mut self.pc;
        let payload_type = |pc: &mut rtc::peer_connection::RTCPeerConnection, mime: &str| {
            let mut sender = pc.rtp_sender(sender)?;
            let codecs = &sender.get_parameters().rtp_parameters.codecs;
            let codec = codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))?;
            Some(codec.payload_type)
        };
        let direct = downtrack.is_direct();
        let (sent, switched) = if direct {
            let mut buf = BytesMut::new();
            let copy = downtrack.forward_direct(incoming, |mime| payload_type(pc, mime), &mut buf)?;
            let switched = copy.switched;
            let (timestamp, payload_len) = (copy.timestamp, incoming.packet.payload.len());
            // Sealed here with the connection's session key where the profile is AES-GCM
            // (browsers' and the SFU's first); otherwise by the connection's own context.
            let protected = match (&self.sealer, self.remote_addr) {
                (Some(sealer), Some(to)) => {
                    let index = downtrack.srtp_index.next(copy.seq);
                    sealer
                        .seal(copy.ssrc, index, copy.header_len, &mut buf)
                        .map(|()| Some((to, buf)))
                        .map_err(|e| e.to_string())
                }
                _ => rtc::rtp::header::Header::unmarshal(&mut &buf[..])
                    .and_then(|header| pc.protect_rtp(&header, &buf))
                    .map_err(|e| e.to_string()),
            };
            let sent = match protected {
                Ok(Some((to, payload))) => {
                    transmits.push_back(Transmit { to, payload });
                    downtrack.sent_directly(now, timestamp, payload_len);
                    if self.next_report.is_none() {
                        self.next_report = Some(now + SENDER_REPORT_INTERVAL);
                    }
                    true
                }
                Ok(None) => false,
                Err(err) => {
                    trace!("{:?}: forward {track}: {err}", self.key);
                    false
                }
            };
            (sent, switched)
        } else {
            let out = downtrack.forward(incoming, |mime| payload_type(pc, mime))?;
            let sent = match pc.rtp_sender(sender).map(|mut s| s.write_rtp(now, out.packet)) {
                Some(Ok(())) => true,
                Some(Err(err)) => {
                    trace!("{:?}: forward {track}: {err}", self.key);
                    false
                }
                None => false,
            };
            (sent, out.switched)
        };
        let first_keyframe = if sent {
            downtrack.delivered(now, incoming.keyframe)
        } else {
            None
        };
        Some(Delivery {
            sent,
            direct,
            switched,
            first_keyframe,
        })
    }

    /// Sends the sender reports of the direct down tracks when they are due (the pipeline's
    /// reports interceptor makes the others'), all of them in one compound RTCP packet.
    pub(super) fn send_direct_reports(&mut self, now: Instant) {
        if self.next_report.is_none_or(|at| now < at) {
            return;
        }
        self.next_report = Some(now + SENDER_REPORT_INTERVAL);
        let mut on = None;
        let mut reports: Vec<Box<dyn rtc::rtcp::Packet>> = Vec::new();
        for downtrack in self.downtracks.values() {
            if let Some(report) = downtrack.sender_report(now, &self.wall_clock) {
                on.get_or_insert(downtrack.sender);
                reports.push(Box::new(report));
            }
        }
        let Some(sender) = on else {
            return;
        };
        if let Some(Err(err)) = self.pc.rtp_sender(sender).map(|mut s| s.write_rtcp(now, reports)) {
            debug!("{:?}: sender reports: {err}", self.key);
        }
    }

    /// RTCP from this peer about a track it receives (`rtc_track_id`, as its connection names
    /// it): which track, and what it asks for.
    pub fn feedback(
        &mut self,
        now: Instant,
        rtc_track_id: &str,
        packets: &[Box<dyn rtc::rtcp::Packet>],
    ) -> Option<(TrackId, Feedback)> {
        let track = *self.by_label.get(rtc_track_id)?;
        let mut feedback = Feedback::default();
        for packet in packets {
            let any = packet.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                feedback.keyframe = true;
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                for report in &rr.reports {
                    feedback.link_changed |= self.link.observe_loss(now, report.fraction_lost);
                }
            } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                feedback.link_changed |= self.link.observe_remb(now, remb.bitrate as u64);
            }
        }
        Some((track, feedback))
    }

    /// Asks this (publishing) peer for a keyframe of each of `ssrcs`, sent on `receiver`.
    pub fn request_keyframe(&mut self, now: Instant, receiver: RTCRtpReceiverId, ssrcs: &[u32]) {
        let Some(mut receiver) = self.pc.rtp_receiver(receiver) else {
            debug!("{:?}: no receiver to ask a keyframe on", self.key);
            return;
        };
        for &media_ssrc in ssrcs {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            };
            if let Err(err) = receiver.write_rtcp(now, vec![Box::new(pli)]) {
                debug!("{:?}: keyframe request: {err}", self.key);
            }
        }
    }
}
