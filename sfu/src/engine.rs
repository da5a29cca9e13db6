//! The SFU: every participant's WebRTC connection (webrtc-rs `rtc`, sans-IO) behind one shared
//! UDP port, and the forwarding between them.
//!
//! Time comes in as `now`, datagrams come in through [`Sfu::handle_datagram`], and everything
//! that should leave is pulled out with [`Sfu::poll_transmit`] and [`Sfu::poll_event`]. The
//! caller owns the socket, the clock and the signaling channel; this type owns all media state
//! through `&mut self`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use huddle_signaling::{Layer, Negotiation, RemoteOffer, TrackSource};
use log::{debug, trace, warn};
use rand::Rng;
use rand::distr::Alphanumeric;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::{
    CongestionFeedback, configure_congestion_control, configure_nack, configure_rtcp_reports,
    configure_simulcast_extension_headers,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;

use crate::codec::{VideoCodec, is_keyframe};
use crate::demux;
use crate::layer::layer_of;
use crate::link::LinkEstimate;
use crate::munger::{Munger, strip_extensions};
use crate::speaker::SpeakerDetector;
use crate::{ParticipantId, Room, RoomConfig, RoomEvent, SfuError, TrackId, TrackKind};

/// The RFC 6464 audio level header extension.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// Addresses one participant may use at once (candidate pairs during ICE, a network change).
const MAX_ADDRESSES_PER_PEER: usize = 8;

/// A call's room, named by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoomId(pub u64);

/// One participant's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey {
    pub room: RoomId,
    pub participant: ParticipantId,
}

#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The bound UDP socket's address.
    pub local_addr: SocketAddr,
    /// The address participants are told to send to (the public IP where the server is behind
    /// 1:1 NAT); usually `local_addr`.
    pub public_addr: SocketAddr,
    pub room: RoomConfig,
    /// Largest SDP accepted from a client.
    pub max_sdp_bytes: usize,
    /// ICE consent: no traffic for this long makes a connection disconnected...
    pub ice_disconnected_timeout: Duration,
    /// ...and for this long failed, which removes the participant.
    pub ice_failed_timeout: Duration,
    pub ice_keepalive_interval: Duration,
    /// At most one keyframe request per published track within this interval.
    pub keyframe_request_interval: Duration,
}

impl SfuConfig {
    pub fn new(local_addr: SocketAddr) -> Self {
        Self {
            local_addr,
            public_addr: local_addr,
            room: RoomConfig::default(),
            max_sdp_bytes: huddle_signaling::protocol::MAX_SDP_BYTES,
            ice_disconnected_timeout: Duration::from_secs(5),
            ice_failed_timeout: Duration::from_secs(15),
            ice_keepalive_interval: Duration::from_secs(2),
            keyframe_request_interval: Duration::from_millis(500),
        }
    }
}

/// A datagram to send from the shared socket.
#[derive(Debug)]
pub struct Transmit {
    pub to: SocketAddr,
    pub payload: BytesMut,
}

/// What the signaling side must pass on, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuEvent {
    /// Send this offer to the participant (`rtc:offer`); its answer must name `offer_id`.
    Offer { peer: PeerKey, offer_id: u64, sdp: String },
    /// The participant's media connection is up.
    Connected { peer: PeerKey },
    TrackPublished {
        room: RoomId,
        owner: ParticipantId,
        track: TrackId,
        /// The ids subscribers see in the SFU's SDP (`msid`).
        stream_id: String,
        track_id: String,
        kind: TrackKind,
        source: TrackSource,
    },
    TrackUnpublished {
        room: RoomId,
        owner: ParticipantId,
        track: TrackId,
        source: TrackSource,
    },
    /// The participant's connection failed (ICE consent lost, DTLS failed); it was removed and
    /// its tracks unpublished.
    PeerFailed { peer: PeerKey },
    /// The active speaker changed (`None`: nobody is speaking).
    Speaker {
        room: RoomId,
        participant: Option<ParticipantId>,
    },
    /// The first keyframe of `track` reached `peer`, `after_answer` the subscriber's answer
    /// for it was applied: how long a new subscription waits for its first picture.
    FirstKeyframe {
        peer: PeerKey,
        track: TrackId,
        after_answer: Duration,
    },
}

/// What the SFU answers to a client's offer or answer: the answer SDP (for an offer), then an
/// offer of its own when the tracks the client receives changed meanwhile. Returning that
/// offer here, rather than as an event, keeps it behind the answer on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NegotiationReply {
    pub answer: Option<String>,
    pub offer: Option<(u64, String)>,
    /// The SFU's own offer this client offer crossed and withdrew: the client must not answer
    /// it (any later offer of the SFU still stands).
    pub withdrawn: Option<u64>,
}

/// Counters for tests, metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SfuStats {
    pub forwarded_packets: u64,
    pub dropped_datagrams: u64,
    pub keyframe_requests: u64,
    pub layer_switches: u64,
}

/// A published track, as the room's subscribers need it.
#[derive(Debug)]
struct Published {
    owner: ParticipantId,
    /// The publisher connection's receiver and track id for it.
    receiver: RTCRtpReceiverId,
    source: TrackSource,
    kind: TrackKind,
    codec: RTCRtpCodec,
    video_codec: Option<VideoCodec>,
    /// Simulcast layers: `(ssrc, rid)`; one entry without a RID for a plain track.
    encodings: Vec<(u32, Option<String>)>,
    audio_level_ext: Option<u8>,
    last_keyframe_request: Option<Instant>,
    /// Layers asked for within the throttle interval, sent when it ends (`None`: all layers).
    deferred_keyframe: Option<Option<Vec<u32>>>,
}

impl Published {
    /// When a deferred keyframe request is due.
    fn keyframe_due(&self, interval: Duration) -> Option<Instant> {
        self.deferred_keyframe.as_ref()?;
        self.last_keyframe_request.map(|at| at + interval)
    }
}

impl Published {
    /// Simulcast tracks name their layers with RIDs (known from the first packet of each).
    fn is_simulcast(&self) -> bool {
        self.encodings.iter().any(|(_, rid)| rid.is_some())
    }

    fn layer_of_ssrc(&self, ssrc: u32) -> Option<Layer> {
        let rids: Vec<String> = self.encodings.iter().filter_map(|(_, rid)| rid.clone()).collect();
        let (_, rid) = self.encodings.iter().find(|(s, _)| *s == ssrc)?;
        Some(rid.as_deref().map_or(Layer::High, |rid| layer_of(rid, &rids)))
    }

    /// The best layer at or below `allowed`, else the lowest there is.
    fn pick(&self, allowed: Layer) -> Option<u32> {
        let mut layers: Vec<(Layer, u32)> = self
            .encodings
            .iter()
            .filter_map(|(ssrc, _)| Some((self.layer_of_ssrc(*ssrc)?, *ssrc)))
            .collect();
        layers.sort();
        layers
            .iter()
            .rev()
            .find(|(layer, _)| *layer <= allowed)
            .or(layers.first())
            .map(|(_, ssrc)| *ssrc)
    }
}

/// How soon a subscription still waiting for its first keyframe asks again. Encoders ignore
/// requests that come within a short window of the last (libwebrtc: 300 ms), so just past
/// it; the ordinary throttle (`keyframe_request_interval`) would make a new viewer wait.
const FIRST_KEYFRAME_RETRY: Duration = Duration::from_millis(350);

#[derive(Debug)]
struct Subscription {
    transceiver: rtc::rtp_transceiver::RTCRtpTransceiverId,
    sender: RTCRtpSenderId,
    ssrc: u32,
    /// The SFU offer that first described this track to the subscriber.
    offered_in: Option<u64>,
    /// When the subscriber's answer to that offer was applied: nothing is forwarded before,
    /// since the subscriber could not place the packets.
    answered_at: Option<Instant>,
    /// Header extensions every forwarded packet carries (the MID, as the subscriber's leg
    /// negotiated it).
    extensions: Vec<(u8, bytes::Bytes)>,
    /// Whether a keyframe of this (video) track has reached the subscriber yet: set-up time is
    /// measured to it, and nothing of the track is forwarded before.
    first_keyframe_sent: bool,
    /// Publisher payload type -> this connection's payload type (`None`: not negotiated here).
    payload_types: HashMap<u8, Option<u8>>,
    munger: Munger,
    wanted: Layer,
    /// The source SSRC (simulcast layer) forwarded now, and the one to switch to.
    current: Option<u32>,
    target: Option<u32>,
}

struct Peer {
    pc: RTCPeerConnection,
    ufrag: String,
    addrs: Vec<SocketAddr>,
    negotiation: Negotiation,
    answered_once: bool,
    connected: bool,
    failed: bool,
    sources: HashMap<String, TrackSource>,
    /// Publisher connection's track id -> room track.
    published: HashMap<String, TrackId>,
    subscriptions: HashMap<TrackId, Subscription>,
    /// Sender track id (as the subscriber's RTCP names it) -> room track.
    subscribed_by_rtc_track: HashMap<String, TrackId>,
    link: LinkEstimate,
    /// The send-side estimate of this peer's downlink (GCC over its TWCC feedback).
    estimate: crate::bwe::SharedEstimate,
    /// The connection's next timeout, as of the last time it was drained (every input marks
    /// it dirty, and draining refreshes this), so finding due connections is cheap.
    deadline: Option<Instant>,
}

struct RoomState {
    room: Room,
    published: HashMap<TrackId, Published>,
    speaker: SpeakerDetector,
}

pub struct Sfu {
    config: SfuConfig,
    rooms: HashMap<RoomId, RoomState>,
    peers: HashMap<PeerKey, Peer>,
    by_ufrag: HashMap<String, PeerKey>,
    by_addr: HashMap<SocketAddr, PeerKey>,
    dirty: Vec<PeerKey>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<SfuEvent>,
    stats: SfuStats,
    /// Live video subscriptions still waiting for their first keyframe.
    awaiting_keyframe: std::collections::HashSet<(PeerKey, TrackId)>,
}

impl Sfu {
    pub fn new(config: SfuConfig) -> Result<Self, SfuError> {
        config.room.validate()?;
        Ok(Self {
            config,
            rooms: HashMap::new(),
            peers: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            dirty: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: SfuStats::default(),
            awaiting_keyframe: std::collections::HashSet::new(),
        })
    }

    pub fn stats(&self) -> SfuStats {
        self.stats
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.config.local_addr
    }

    pub fn participants(&self, room: RoomId) -> Vec<ParticipantId> {
        self.rooms
            .get(&room)
            .map(|r| r.room.participants().collect())
            .unwrap_or_default()
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// The send-side bandwidth estimate of `peer`'s downlink, bits per second.
    pub fn downlink_estimate(&self, peer: PeerKey) -> Option<u64> {
        self.peers.get(&peer).map(|p| p.estimate.bits_per_second())
    }

    /// Tracks `participant` receives, with the ids its SDP names them by.
    pub fn subscriptions(&self, peer: PeerKey) -> Vec<TrackId> {
        let mut tracks: Vec<TrackId> = self
            .peers
            .get(&peer)
            .map(|p| p.subscriptions.keys().copied().collect())
            .unwrap_or_default();
        tracks.sort();
        tracks
    }

    /// Adds a participant to a room (created on first use) with a fresh connection. It receives
    /// everything already published once it has offered.
    pub fn join(&mut self, now: Instant, key: PeerKey) -> Result<(), SfuError> {
        if self.peers.contains_key(&key) {
            return Err(SfuError::AlreadyJoined(key.participant));
        }
        let state = match self.rooms.entry(key.room) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(RoomState {
                room: Room::new(self.config.room)?,
                published: HashMap::new(),
                speaker: SpeakerDetector::default(),
            }),
        };
        if state.room.participant_count() >= self.config.room.max_participants {
            return Err(SfuError::RoomFull {
                max: self.config.room.max_participants,
            });
        }
        let ufrag = random_token(16);
        let (pc, estimate) = new_connection(&self.config, now, &ufrag)?;
        state.room.join(key.participant)?;
        self.by_ufrag.insert(ufrag.clone(), key);
        self.peers.insert(
            key,
            Peer {
                pc,
                ufrag,
                addrs: Vec::new(),
                negotiation: Negotiation::new(),
                answered_once: false,
                connected: false,
                failed: false,
                sources: HashMap::new(),
                published: HashMap::new(),
                subscriptions: HashMap::new(),
                subscribed_by_rtc_track: HashMap::new(),
                link: LinkEstimate::default(),
                estimate,
                deadline: Some(now),
            },
        );
        self.process_room_events(now, key.room);
        Ok(())
    }

    /// Removes a participant: its connection closes, its tracks leave every subscriber.
    pub fn leave(&mut self, now: Instant, key: PeerKey) -> Result<(), SfuError> {
        let Some(mut peer) = self.peers.remove(&key) else {
            return Err(SfuError::UnknownParticipant(key.participant));
        };
        if let Err(err) = peer.pc.close() {
            debug!("closing {key:?}: {err}");
        }
        while let Some(t) = peer.pc.poll_write() {
            self.transmits.push_back(Transmit {
                to: t.transport.peer_addr,
                payload: t.message,
            });
        }
        self.by_ufrag.remove(&peer.ufrag);
        for addr in &peer.addrs {
            self.by_addr.remove(addr);
        }
        self.dirty.retain(|k| *k != key);
        if let Some(state) = self.rooms.get_mut(&key.room) {
            state.speaker.remove(now, key.participant);
            state.room.leave(key.participant)?;
        }
        self.process_room_events(now, key.room);
        self.drive(now, None);
        Ok(())
    }

    /// A client's offer: applied, answered, and followed by the SFU's own offer when one is due.
    pub fn handle_offer(
        &mut self,
        now: Instant,
        key: PeerKey,
        sdp: String,
        sources: &[(String, TrackSource)],
    ) -> Result<NegotiationReply, SfuError> {
        self.check_sdp(&sdp)?;
        let public = self.config.public_addr;
        let peer = self.peer_mut(key)?;
        let mut withdrawn_offer = None;
        if let RemoteOffer::RollbackThenApply { withdrawn } = peer.negotiation.remote_offer() {
            debug!("{key:?}: offers crossed; withdrawing offer {withdrawn}");
            let rollback = RTCSessionDescription::rollback(None).map_err(sdp_error)?;
            peer.pc.set_local_description(now, rollback).map_err(sdp_error)?;
            withdrawn_offer = Some(withdrawn);
        }
        for (track_id, source) in sources {
            peer.sources.insert(track_id.clone(), *source);
        }
        let offer = RTCSessionDescription::offer(sdp).map_err(sdp_error)?;
        peer.pc.set_remote_description(now, offer).map_err(sdp_error)?;
        if !peer.answered_once {
            add_host_candidate(&mut peer.pc, public)?;
        }
        let answer = peer.pc.create_answer(None).map_err(sdp_error)?;
        peer.pc.set_local_description(now, answer).map_err(sdp_error)?;
        peer.answered_once = true;
        let answer = peer
            .pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| SfuError::Negotiation("no local description after answering".into()))?;
        self.mark_dirty(key);
        self.drive(now, Some(key));
        let offer = self.make_offer(now, key);
        Ok(NegotiationReply {
            answer: Some(answer),
            offer,
            withdrawn: withdrawn_offer,
        })
    }

    /// A client's answer to the SFU's offer `offer_id`.
    pub fn handle_answer(
        &mut self,
        now: Instant,
        key: PeerKey,
        offer_id: u64,
        sdp: String,
    ) -> Result<NegotiationReply, SfuError> {
        self.check_sdp(&sdp)?;
        let peer = self.peer_mut(key)?;
        peer.negotiation
            .remote_answer(offer_id)
            .map_err(|e| SfuError::Negotiation(e.to_string()))?;
        let answer = RTCSessionDescription::answer(sdp).map_err(sdp_error)?;
        if let Err(err) = peer.pc.set_remote_description(now, answer) {
            // The offer stays unanswered on our side: withdraw it and try again later.
            let _ = RTCSessionDescription::rollback(None).map(|r| peer.pc.set_local_description(now, r));
            peer.negotiation.offer_failed();
            return Err(sdp_error(err));
        }
        let answered = self.answered(now, key, offer_id);
        self.mark_dirty(key);
        self.drive(now, Some(key));
        for track in answered {
            self.go_live(now, key, track);
        }
        Ok(NegotiationReply {
            answer: None,
            offer: self.make_offer(now, key),
            withdrawn: None,
        })
    }

    /// A trickled ICE candidate from the client (empty: end of candidates).
    pub fn add_candidate(&mut self, key: PeerKey, candidate: RTCIceCandidateInit) -> Result<(), SfuError> {
        let peer = self.peer_mut(key)?;
        if candidate.candidate.is_empty() {
            return Ok(());
        }
        peer.pc
            .add_remote_candidate(candidate)
            .map_err(|e| SfuError::Negotiation(format!("candidate refused: {e}")))?;
        self.mark_dirty(key);
        Ok(())
    }

    /// The highest simulcast layer `key` wants of `track`.
    pub fn set_layer(&mut self, now: Instant, key: PeerKey, track: TrackId, layer: Layer) -> Result<(), SfuError> {
        let peer = self.peer_mut(key)?;
        let sub = peer
            .subscriptions
            .get_mut(&track)
            .ok_or(SfuError::UnknownTrack(track))?;
        sub.wanted = layer;
        self.reselect_layer(now, key, track);
        self.drive(now, None);
        Ok(())
    }

    /// A datagram that arrived on the shared socket. Unknown senders and packets a connection
    /// refuses are dropped (and counted); nothing here can fail the caller.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, payload: &[u8]) -> Result<(), SfuError> {
        let key = match self.by_addr.get(&from) {
            Some(key) => *key,
            None => {
                let Some(key) = demux::stun_local_ufrag(payload)
                    .and_then(|u| self.by_ufrag.get(u))
                    .copied()
                else {
                    self.stats.dropped_datagrams += 1;
                    return Err(SfuError::UnknownSource);
                };
                let peer = self.peers.get_mut(&key).ok_or(SfuError::UnknownSource)?;
                if peer.addrs.len() >= MAX_ADDRESSES_PER_PEER {
                    let old = peer.addrs.remove(0);
                    self.by_addr.remove(&old);
                }
                peer.addrs.push(from);
                self.by_addr.insert(from, key);
                key
            }
        };
        // Every datagram arrived at the one candidate the SFU advertises: that is the local
        // address ICE checks against (the bound one may be `0.0.0.0`, or a private address
        // behind 1:1 NAT).
        let local_addr = self.config.public_addr;
        let peer = self.peers.get_mut(&key).ok_or(SfuError::UnknownSource)?;
        let result = peer
            .pc
            .handle_read(crate::udp_datagram(now, local_addr, from, BytesMut::from(payload)));
        self.mark_dirty(key);
        self.drive(now, None);
        result.map_err(|e| {
            self.stats.dropped_datagrams += 1;
            trace!("{key:?}: datagram refused: {e}");
            SfuError::Refused(e.to_string())
        })
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let peers = self.peers.values().filter_map(|p| p.deadline);
        let interval = self.config.keyframe_request_interval;
        let speakers = self.rooms.values().filter_map(|r| r.speaker.poll_timeout());
        let keyframes = self
            .rooms
            .values()
            .flat_map(|r| r.published.values().filter_map(|p| p.keyframe_due(interval)));
        peers.chain(speakers).chain(keyframes).min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<PeerKey> = self
            .peers
            .iter()
            .filter_map(|(k, p)| p.deadline.is_some_and(|at| at <= now).then_some(*k))
            .collect();
        for key in due {
            if let Some(peer) = self.peers.get_mut(&key)
                && let Err(err) = peer.pc.handle_timeout(now)
            {
                debug!("{key:?}: timeout handling: {err}");
            }
            self.mark_dirty(key);
        }
        // The downlink estimates move with TWCC feedback; re-cap layers where one crossed a
        // threshold.
        let mut relayer = Vec::new();
        for (key, peer) in &mut self.peers {
            if peer.link.observe_estimate(now, peer.estimate.bits_per_second()) {
                relayer.extend(peer.subscriptions.keys().map(|t| (*key, *t)));
            }
        }
        for (key, track) in relayer {
            self.reselect_layer(now, key, track);
        }
        self.retry_first_keyframes(now);
        let interval = self.config.keyframe_request_interval;
        let mut deferred = Vec::new();
        for (room, state) in &mut self.rooms {
            if let Some(participant) = state.speaker.handle_timeout(now) {
                self.events.push_back(SfuEvent::Speaker {
                    room: *room,
                    participant,
                });
            }
            for (track, published) in &mut state.published {
                if published.keyframe_due(interval).is_some_and(|at| at <= now) {
                    deferred.push((*room, *track, published.deferred_keyframe.take().flatten()));
                }
            }
        }
        for (room, track, layers) in deferred {
            self.send_keyframe_request(now, room, track, layers);
        }
        self.drive(now, None);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SfuEvent> {
        self.events.pop_front()
    }

    // ---- internals ----
}

fn new_connection(
    config: &SfuConfig,
    now: Instant,
    ufrag: &str,
) -> Result<(RTCPeerConnection, crate::bwe::SharedEstimate), SfuError> {
    let mut media = MediaEngine::default();
    media.register_default_codecs().map_err(setup_error)?;
    // Audio levels (the active speaker), the MID on every m-line (so a subscriber can place
    // each packet), and abs-send-time, which clients that estimate bandwidth from it need
    // accepted. MID and RID on video come with the simulcast headers below.
    for (uri, kind) in [
        (AUDIO_LEVEL_URI, RtpCodecKind::Audio),
        (rtc::sdp::extmap::SDES_MID_URI, RtpCodecKind::Audio),
        (rtc::sdp::extmap::ABS_SEND_TIME_URI, RtpCodecKind::Audio),
        (rtc::sdp::extmap::ABS_SEND_TIME_URI, RtpCodecKind::Video),
    ] {
        media
            .register_header_extension(RTCRtpHeaderExtensionCapability { uri: uri.to_owned() }, kind, None)
            .map_err(setup_error)?;
    }
    // Send-side estimation (GCC over TWCC) and the pacer it drives: forwarded media leaves at
    // the rate the estimate allows, released by `handle_timeout`.
    let (gcc, estimate) = crate::bwe::ReportingGcc::new();
    let registry = configure_congestion_control(
        crate::feedback::deliver_feedback(Registry::new()),
        gcc,
        CongestionFeedback::Twcc,
        &mut media,
    )
    .map_err(setup_error)?;
    // The defaults less their TWCC receiver, which congestion control registered already
    // (a second one only warns, for every peer).
    let registry = configure_rtcp_reports(configure_nack(registry, &mut media));
    configure_simulcast_extension_headers(&mut media).map_err(setup_error)?;
    let settings = SettingEngineBuilder::new()
        .with_ice_credentials(ufrag.to_owned(), random_token(32))
        .with_ice_timeouts(
            Some(config.ice_disconnected_timeout),
            Some(config.ice_failed_timeout),
            Some(config.ice_keepalive_interval),
        )
        .with_lite(true)
        .build();
    let pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(settings)
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .build(now)
        .map_err(setup_error)?;
    Ok((pc, estimate))
}

impl Sfu {
    fn check_sdp(&self, sdp: &str) -> Result<(), SfuError> {
        if sdp.len() > self.config.max_sdp_bytes {
            return Err(SfuError::SdpTooLarge {
                len: sdp.len(),
                max: self.config.max_sdp_bytes,
            });
        }
        Ok(())
    }

    fn peer_mut(&mut self, key: PeerKey) -> Result<&mut Peer, SfuError> {
        self.peers
            .get_mut(&key)
            .ok_or(SfuError::UnknownParticipant(key.participant))
    }

    fn mark_dirty(&mut self, key: PeerKey) {
        if !self.dirty.contains(&key) {
            self.dirty.push(key);
        }
    }

    /// Drains every connection that may have output, until none has. `hold` is a peer whose
    /// offer the caller takes itself (it answers on the same message).
    fn drive(&mut self, now: Instant, hold: Option<PeerKey>) {
        let mut failed = Vec::new();
        while let Some(key) = self.dirty.pop() {
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            let mut events = Vec::new();
            while let Some(event) = peer.pc.poll_event() {
                events.push(event);
            }
            let mut messages = Vec::new();
            while let Some(message) = peer.pc.poll_read() {
                messages.push(message);
            }
            while let Some(t) = peer.pc.poll_write() {
                self.transmits.push_back(Transmit {
                    to: t.transport.peer_addr,
                    payload: t.message,
                });
            }
            peer.deadline = peer.pc.poll_timeout();
            for event in events {
                if self.on_connection_event(now, key, event) {
                    failed.push(key);
                }
            }
            for message in messages {
                match message.message {
                    RTCMessage::RtpPacket(track_id, packet) => self.on_rtp(now, key, &track_id, packet),
                    RTCMessage::RtcpPacket(track_id, packets) => self.on_rtcp(now, key, &track_id, &packets),
                    _ => {}
                }
            }
        }
        for key in failed {
            if self.peers.contains_key(&key) {
                warn!("{key:?}: media connection failed; removing the participant");
                let _ = self.leave(now, key);
                self.events.push_back(SfuEvent::PeerFailed { peer: key });
            }
        }
        let due: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(k, p)| Some(**k) != hold && p.answered_once && p.negotiation.is_renegotiation_pending())
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            if let Some((offer_id, sdp)) = self.make_offer(now, key) {
                self.events.push_back(SfuEvent::Offer {
                    peer: key,
                    offer_id,
                    sdp,
                });
            }
        }
        // Offers may have queued output (nothing today, but keep the invariant).
        if !self.dirty.is_empty() {
            self.drive(now, hold);
        }
    }

    /// Creates the SFU's offer for `key` when one is due.
    fn make_offer(&mut self, now: Instant, key: PeerKey) -> Option<(u64, String)> {
        let peer = self.peers.get_mut(&key)?;
        if !peer.answered_once || !is_stable(&peer.pc) {
            return None;
        }
        let offer_id = peer.negotiation.poll_offer()?;
        let created = peer
            .pc
            .create_offer(None)
            .and_then(|offer| peer.pc.set_local_description(now, offer));
        match created.map(|_| peer.pc.local_description()) {
            Ok(Some(desc)) => {
                // The offer describes every track not yet answered for (one offer is out at a
                // time, so the answer naming this id covers them).
                for sub in peer.subscriptions.values_mut().filter(|s| s.answered_at.is_none()) {
                    sub.offered_in = Some(offer_id);
                }
                Some((offer_id, desc.sdp))
            }
            Ok(None) | Err(_) => {
                warn!("{key:?}: could not create an offer");
                peer.negotiation.offer_failed();
                None
            }
        }
    }

    /// Returns true when the connection failed.
    fn on_connection_event(&mut self, now: Instant, key: PeerKey, event: RTCPeerConnectionEvent) -> bool {
        match event {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                debug!("{key:?}: connection {state}");
                match state {
                    RTCPeerConnectionState::Connected => {
                        if let Some(peer) = self.peers.get_mut(&key)
                            && !peer.connected
                        {
                            peer.connected = true;
                            self.events.push_back(SfuEvent::Connected { peer: key });
                            // Connected means DTLS is done and SRTP keyed (the SFU is the DTLS
                            // client, which finishes last): tracks already answered for go
                            // live now.
                            let tracks: Vec<TrackId> = peer
                                .subscriptions
                                .iter()
                                .filter(|(_, s)| s.answered_at.is_some())
                                .map(|(t, _)| *t)
                                .collect();
                            for track in tracks {
                                self.go_live(now, key, track);
                            }
                        }
                        false
                    }
                    RTCPeerConnectionState::Failed => self.mark_failed(key),
                    _ => false,
                }
            }
            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(state) => {
                debug!("{key:?}: ICE {state}");
                state == RTCIceConnectionState::Failed && self.mark_failed(key)
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                self.on_track_open(now, key, init.receiver_id, init.track_id, init.ssrc, init.rid);
                false
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track_id)) => {
                self.on_track_closed(now, key, &track_id);
                false
            }
            _ => false,
        }
    }

    fn mark_failed(&mut self, key: PeerKey) -> bool {
        match self.peers.get_mut(&key) {
            Some(peer) if !peer.failed => {
                peer.failed = true;
                true
            }
            _ => false,
        }
    }

    fn on_track_open(
        &mut self,
        now: Instant,
        key: PeerKey,
        receiver: RTCRtpReceiverId,
        rtc_track_id: String,
        ssrc: u32,
        rid: Option<String>,
    ) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(state) = self.rooms.get_mut(&key.room) else {
            return;
        };
        if let Some(track) = peer.published.get(&rtc_track_id) {
            // Another simulcast layer of a track we know.
            if let Some(published) = state.published.get_mut(track)
                && !published.encodings.iter().any(|(s, _)| *s == ssrc)
            {
                published.encodings.push((ssrc, rid));
            }
            let track = *track;
            let subscribers: Vec<PeerKey> = state
                .room
                .subscribers_of(track)
                .map(|s| {
                    s.map(|participant| PeerKey {
                        room: key.room,
                        participant,
                    })
                    .collect()
                })
                .unwrap_or_default();
            for sub in subscribers {
                self.reselect_layer(now, sub, track);
            }
            return;
        }
        let Some(mut receiver_handle) = peer.pc.rtp_receiver(receiver) else {
            return;
        };
        let rtc_kind = receiver_handle.track().kind();
        let params = receiver_handle.get_parameters().rtp_parameters.clone();
        let Some(codec) = params.codecs.iter().find(|c| !c.rtp_codec.mime_type.ends_with("/rtx")) else {
            warn!("{key:?}: track {rtc_track_id} has no usable codec");
            return;
        };
        let audio_level_ext = params
            .header_extensions
            .iter()
            .find(|e| e.uri == AUDIO_LEVEL_URI)
            .and_then(|e| u8::try_from(e.id).ok());
        let source = peer.sources.get(&rtc_track_id).copied().unwrap_or(match rtc_kind {
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
            return;
        }
        let track = match state.room.publish(key.participant, kind) {
            Ok(track) => track,
            Err(err) => {
                warn!("{key:?}: track {rtc_track_id} not published: {err}");
                return;
            }
        };
        peer.published.insert(rtc_track_id, track);
        state.published.insert(
            track,
            Published {
                owner: key.participant,
                receiver,
                source,
                kind,
                video_codec: VideoCodec::from_mime(&codec.rtp_codec.mime_type),
                codec: codec.rtp_codec.clone(),
                encodings: vec![(ssrc, rid)],
                audio_level_ext,
                last_keyframe_request: None,
                deferred_keyframe: None,
            },
        );
        self.process_room_events(now, key.room);
    }

    fn on_track_closed(&mut self, now: Instant, key: PeerKey, rtc_track_id: &str) {
        let Some(track) = self.peers.get_mut(&key).and_then(|p| p.published.remove(rtc_track_id)) else {
            return;
        };
        if let Some(state) = self.rooms.get_mut(&key.room)
            && let Err(err) = state.room.unpublish(key.participant, track)
        {
            debug!("{key:?}: unpublish {track}: {err}");
        }
        self.process_room_events(now, key.room);
    }

    /// Turns the room's bookkeeping changes into subscriptions and events.
    fn process_room_events(&mut self, now: Instant, room: RoomId) {
        loop {
            let Some(state) = self.rooms.get_mut(&room) else {
                return;
            };
            let Some(event) = state.room.poll_event() else {
                return;
            };
            match event {
                RoomEvent::ParticipantJoined { participant } => {
                    let key = PeerKey { room, participant };
                    let tracks: Vec<TrackId> = state.published.keys().copied().collect();
                    for track in tracks {
                        self.subscribe(now, key, track);
                    }
                }
                RoomEvent::TrackPublished { track, owner, .. } => {
                    let others: Vec<ParticipantId> = state.room.participants().filter(|p| *p != owner).collect();
                    if let Some(published) = state.published.get(&track) {
                        self.events.push_back(SfuEvent::TrackPublished {
                            room,
                            owner,
                            track,
                            stream_id: stream_id(owner),
                            track_id: track_label(track),
                            kind: published.kind,
                            source: published.source,
                        });
                    }
                    for participant in others {
                        self.subscribe(now, PeerKey { room, participant }, track);
                    }
                }
                RoomEvent::TrackUnpublished { track, owner, .. } => {
                    let published = state.published.remove(&track);
                    for (key, peer) in self.peers.iter_mut().filter(|(k, _)| k.room == room) {
                        if let Some(sub) = peer.subscriptions.remove(&track) {
                            peer.subscribed_by_rtc_track.retain(|_, t| *t != track);
                            if let Err(err) = peer.pc.remove_track(sub.sender) {
                                debug!("{key:?}: remove {track}: {err}");
                            }
                            peer.negotiation.renegotiation_needed();
                            if !self.dirty.contains(key) {
                                self.dirty.push(*key);
                            }
                        }
                    }
                    if let Some(published) = published {
                        self.events.push_back(SfuEvent::TrackUnpublished {
                            room,
                            owner,
                            track,
                            source: published.source,
                        });
                    }
                }
                RoomEvent::ParticipantLeft { .. } => {}
                RoomEvent::RoomEmpty => {
                    self.rooms.remove(&room);
                    return;
                }
            }
        }
    }

    /// Adds a send-only transceiver for `track` to `key`'s connection.
    fn subscribe(&mut self, now: Instant, key: PeerKey, track: TrackId) {
        let Some(state) = self.rooms.get(&key.room) else {
            return;
        };
        let Some(published) = state.published.get(&track) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.subscriptions.contains_key(&track) {
            return;
        }
        let kind = if published.kind == TrackKind::Audio {
            RtpCodecKind::Audio
        } else {
            RtpCodecKind::Video
        };
        let ssrc = rand::rng().random::<u32>();
        let label = track_label(track);
        let stream = stream_id(published.owner);
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
                codec: published.codec.clone(),
                ..Default::default()
            }],
        );
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            streams: vec![stream],
            send_encodings: vec![],
        };
        let transceiver = match peer.pc.add_transceiver_from_track(media_track, Some(init)) {
            Ok(t) => t,
            Err(err) => {
                warn!("{key:?}: cannot receive {track}: {err}");
                return;
            }
        };
        let Some(sender) = peer.pc.rtp_transceiver(transceiver).and_then(|t| t.sender()) else {
            warn!("{key:?}: transceiver for {track} has no sender");
            return;
        };
        peer.subscriptions.insert(
            track,
            Subscription {
                transceiver,
                sender,
                ssrc,
                offered_in: None,
                answered_at: None,
                extensions: Vec::new(),
                first_keyframe_sent: false,
                payload_types: HashMap::new(),
                munger: Munger::default(),
                wanted: Layer::High,
                current: None,
                target: None,
            },
        );
        peer.subscribed_by_rtc_track.insert(label, track);
        peer.negotiation.renegotiation_needed();
        self.mark_dirty(key);
        self.reselect_layer(now, key, track);
    }

    /// Re-decides which layer of `track` goes to `key`; a change waits for a keyframe, which is
    /// requested.
    fn reselect_layer(&mut self, now: Instant, key: PeerKey, track: TrackId) {
        let Some(published) = self.rooms.get(&key.room).and_then(|s| s.published.get(&track)) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let allowed = peer.link.max_layer(now);
        let Some(sub) = peer.subscriptions.get_mut(&track) else {
            return;
        };
        let target = published.pick(sub.wanted.min(allowed));
        let live = sub.answered_at.is_some() && peer.connected;
        if target != sub.target {
            sub.target = target;
            // A subscriber that cannot receive yet gets its keyframe when it goes live.
            if live && published.video_codec.is_some() && target != sub.current {
                self.request_keyframe(now, key.room, track, target);
            }
        }
    }

    /// The subscriptions `key`'s answer to `offer_id` covers: from now on their packets carry
    /// the header extensions the subscriber's legs negotiated, and may be forwarded.
    fn answered(&mut self, now: Instant, key: PeerKey, offer_id: u64) -> Vec<TrackId> {
        let Some(peer) = self.peers.get_mut(&key) else {
            return Vec::new();
        };
        let mut answered = Vec::new();
        for (track, sub) in &mut peer.subscriptions {
            if sub.answered_at.is_some() || sub.offered_in != Some(offer_id) {
                continue;
            }
            let mid = peer.pc.rtp_transceiver(sub.transceiver).and_then(|t| t.mid().clone());
            let mid_ext = peer.pc.rtp_sender(sub.sender).and_then(|mut s| {
                s.get_parameters()
                    .rtp_parameters
                    .header_extensions
                    .iter()
                    .find(|e| e.uri == rtc::sdp::extmap::SDES_MID_URI)
                    .and_then(|e| u8::try_from(e.id).ok())
            });
            sub.extensions.clear();
            if let (Some(id), Some(mid)) = (mid_ext, mid) {
                sub.extensions.push((id, bytes::Bytes::from(mid.into_bytes())));
            }
            // Payload types are as this answer settled them.
            sub.payload_types.clear();
            sub.answered_at = Some(now);
            answered.push(*track);
        }
        answered
    }

    /// `track` can now reach `key` (answered for and connected): pick its layer and ask the
    /// publisher for a keyframe at once, past the request throttle, so the subscriber's
    /// first frame does not wait out another subscriber's request.
    fn go_live(&mut self, now: Instant, key: PeerKey, track: TrackId) {
        let Some(peer) = self.peers.get(&key) else {
            return;
        };
        if !peer.connected || peer.subscriptions.get(&track).is_none_or(|s| s.answered_at.is_none()) {
            return;
        }
        self.reselect_layer(now, key, track);
        let target = self
            .peers
            .get(&key)
            .and_then(|p| p.subscriptions.get(&track))
            .and_then(|s| s.target);
        let video = self
            .rooms
            .get(&key.room)
            .and_then(|s| s.published.get(&track))
            .is_some_and(|p| p.video_codec.is_some());
        if video {
            self.awaiting_keyframe.insert((key, track));
            self.request_keyframe_now(now, key.room, track, target);
        }
    }

    /// Asks again for the first keyframe of every live video subscription still waiting for
    /// one: a publisher may have ignored a request that came too soon after another. Those
    /// whose subscriber or track is gone, or that got their keyframe, leave the list.
    fn retry_first_keyframes(&mut self, now: Instant) {
        if self.awaiting_keyframe.is_empty() {
            return;
        }
        let peers = &self.peers;
        self.awaiting_keyframe.retain(|(key, track)| {
            peers
                .get(key)
                .and_then(|p| p.subscriptions.get(track))
                .is_some_and(|s| !s.first_keyframe_sent)
        });
        let waiting: Vec<(PeerKey, TrackId)> = self.awaiting_keyframe.iter().copied().collect();
        for (key, track) in waiting {
            let asked = self
                .rooms
                .get(&key.room)
                .and_then(|s| s.published.get(&track))
                .and_then(|p| p.last_keyframe_request);
            if asked.is_none_or(|at| now.saturating_duration_since(at) >= FIRST_KEYFRAME_RETRY) {
                let target = self.peers.get(&key).and_then(|p| p.subscriptions.get(&track)?.target);
                self.request_keyframe_now(now, key.room, track, target);
            }
        }
    }

    /// Asks a track's publisher for a keyframe of layer `ssrc` (all layers: `None`). At most one
    /// request per track goes out per interval; requests within it are merged and sent when it
    /// ends, so none is lost.
    fn request_keyframe(&mut self, now: Instant, room: RoomId, track: TrackId, ssrc: Option<u32>) {
        self.keyframe_request(now, room, track, ssrc, false);
    }

    /// [`request_keyframe`](Self::request_keyframe) past the throttle (merged with what it
    /// holds back), for a subscription that just went live. Several going live at the same
    /// instant share one request.
    fn request_keyframe_now(&mut self, now: Instant, room: RoomId, track: TrackId, ssrc: Option<u32>) {
        self.keyframe_request(now, room, track, ssrc, true);
    }

    fn keyframe_request(&mut self, now: Instant, room: RoomId, track: TrackId, ssrc: Option<u32>, urgent: bool) {
        let interval = if urgent {
            Duration::from_millis(1)
        } else {
            self.config.keyframe_request_interval
        };
        let Some(published) = self.rooms.get_mut(&room).and_then(|s| s.published.get_mut(&track)) else {
            return;
        };
        if published.video_codec.is_none() {
            return;
        }
        let merged = match (published.deferred_keyframe.take(), ssrc) {
            (Some(None), _) | (_, None) => None,
            (Some(Some(mut layers)), Some(ssrc)) => {
                if !layers.contains(&ssrc) {
                    layers.push(ssrc);
                }
                Some(layers)
            }
            (None, Some(ssrc)) => Some(vec![ssrc]),
        };
        if published
            .last_keyframe_request
            .is_some_and(|at| now.saturating_duration_since(at) < interval)
        {
            published.deferred_keyframe = Some(merged);
            return;
        }
        self.send_keyframe_request(now, room, track, merged);
    }

    fn send_keyframe_request(&mut self, now: Instant, room: RoomId, track: TrackId, layers: Option<Vec<u32>>) {
        let Some(published) = self.rooms.get_mut(&room).and_then(|s| s.published.get_mut(&track)) else {
            return;
        };
        published.last_keyframe_request = Some(now);
        published.deferred_keyframe = None;
        let owner = PeerKey {
            room,
            participant: published.owner,
        };
        let ssrcs = layers.unwrap_or_else(|| published.encodings.iter().map(|(s, _)| *s).collect());
        let receiver = published.receiver;
        let Some(peer) = self.peers.get_mut(&owner) else {
            return;
        };
        let Some(mut receiver) = peer.pc.rtp_receiver(receiver) else {
            return;
        };
        for media_ssrc in ssrcs {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            };
            if let Err(err) = receiver.write_rtcp(now, vec![Box::new(pli)]) {
                debug!("{owner:?}: keyframe request: {err}");
            }
        }
        self.stats.keyframe_requests += 1;
        self.mark_dirty(owner);
    }

    fn on_rtp(&mut self, now: Instant, from: PeerKey, rtc_track_id: &str, mut packet: rtc::rtp::Packet) {
        let Some(track) = self
            .peers
            .get(&from)
            .and_then(|p| p.published.get(rtc_track_id))
            .copied()
        else {
            return;
        };
        let Some(state) = self.rooms.get_mut(&from.room) else {
            return;
        };
        let Some(published) = state.published.get(&track) else {
            return;
        };
        if let Some(level) = published
            .audio_level_ext
            .and_then(|id| packet.header.get_extension(id))
            .and_then(|ext| ext.first().copied())
        {
            state.speaker.observe(now, from.participant, level & 0x7f);
        }
        let source_ssrc = packet.header.ssrc;
        let simulcast = published.is_simulcast();
        let keyframe = published
            .video_codec
            .is_some_and(|codec| is_keyframe(codec, &packet.payload));
        let video = published.video_codec.is_some();
        let frame_gap = published.codec.clock_rate / 30;
        let mime = published.codec.mime_type.clone();
        let subscribers: Vec<ParticipantId> = match state.room.subscribers_of(track) {
            Ok(s) => s.collect(),
            Err(_) => return,
        };
        strip_extensions(&mut packet.header);
        for participant in subscribers {
            let key = PeerKey {
                room: from.room,
                participant,
            };
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            if !peer.connected {
                continue;
            }
            let Some(sub) = peer.subscriptions.get_mut(&track) else {
                continue;
            };
            let Some(answered_at) = sub.answered_at else {
                continue;
            };
            // A new subscription's video starts with a keyframe: frames before it could not
            // be decoded (it was asked for when the subscription went live).
            if video && !sub.first_keyframe_sent && !keyframe {
                continue;
            }
            if simulcast {
                if sub.target == Some(source_ssrc) && sub.current != Some(source_ssrc) && keyframe {
                    sub.current = Some(source_ssrc);
                    sub.munger.switch_source();
                    self.stats.layer_switches += 1;
                }
                if sub.current != Some(source_ssrc) {
                    continue;
                }
            }
            let pt = *sub.payload_types.entry(packet.header.payload_type).or_insert_with(|| {
                peer.pc.rtp_sender(sub.sender).and_then(|mut s| {
                    s.get_parameters()
                        .rtp_parameters
                        .codecs
                        .iter()
                        .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(&mime))
                        .map(|c| c.payload_type)
                })
            });
            let Some(pt) = pt else {
                continue;
            };
            let (seq, ts) = sub
                .munger
                .rewrite(packet.header.sequence_number, packet.header.timestamp, frame_gap);
            let mut out = packet.clone();
            out.header.payload_type = pt;
            out.header.ssrc = sub.ssrc;
            out.header.sequence_number = seq;
            out.header.timestamp = ts;
            for (id, value) in &sub.extensions {
                if let Err(err) = out.header.set_extension(*id, value.clone()) {
                    trace!("{key:?}: extension {id} on {track}: {err}");
                }
            }
            let first_keyframe = keyframe && !sub.first_keyframe_sent;
            let sender = sub.sender;
            match peer.pc.rtp_sender(sender).map(|mut s| s.write_rtp(now, out)) {
                Some(Ok(())) => {
                    self.stats.forwarded_packets += 1;
                    if first_keyframe && let Some(sub) = peer.subscriptions.get_mut(&track) {
                        sub.first_keyframe_sent = true;
                        self.awaiting_keyframe.remove(&(key, track));
                        self.events.push_back(SfuEvent::FirstKeyframe {
                            peer: key,
                            track,
                            after_answer: now.saturating_duration_since(answered_at),
                        });
                    }
                }
                Some(Err(err)) => trace!("{key:?}: forward {track}: {err}"),
                None => {}
            }
            if !self.dirty.contains(&key) {
                self.dirty.push(key);
            }
        }
    }

    fn on_rtcp(&mut self, now: Instant, from: PeerKey, rtc_track_id: &str, packets: &[Box<dyn rtc::rtcp::Packet>]) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        // Feedback about a track the peer receives: find which.
        let Some(track) = peer.subscribed_by_rtc_track.get(rtc_track_id).copied() else {
            return;
        };
        let mut keyframe = false;
        let mut link_changed = false;
        for packet in packets {
            let any = packet.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                keyframe = true;
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                for report in &rr.reports {
                    link_changed |= peer.link.observe_loss(now, report.fraction_lost);
                }
            } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                link_changed |= peer.link.observe_remb(now, remb.bitrate as u64);
            }
        }
        let current = peer.subscriptions.get(&track).and_then(|s| s.current.or(s.target));
        let subscribed: Vec<TrackId> = peer.subscriptions.keys().copied().collect();
        if keyframe {
            self.request_keyframe(now, from.room, track, current);
        }
        if link_changed {
            for track in subscribed {
                self.reselect_layer(now, from, track);
            }
        }
    }
}

fn add_host_candidate(pc: &mut RTCPeerConnection, addr: SocketAddr) -> Result<(), SfuError> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .map_err(setup_error)?;
    let init = RTCIceCandidate::from(&candidate).to_json().map_err(setup_error)?;
    pc.add_local_candidate(init).map_err(setup_error)
}

/// The stream id subscribers see for a participant's tracks.
pub fn stream_id(owner: ParticipantId) -> String {
    owner.to_string()
}

/// The track id subscribers see for a published track.
pub fn track_label(track: TrackId) -> String {
    track.to_string()
}

/// True when no offer is outstanding in either direction.
pub(crate) fn is_stable(pc: &RTCPeerConnection) -> bool {
    pc.pending_local_description().is_none() && pc.pending_remote_description().is_none()
}

fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn sdp_error(err: rtc::shared::error::Error) -> SfuError {
    SfuError::Negotiation(err.to_string())
}

fn setup_error(err: rtc::shared::error::Error) -> SfuError {
    SfuError::Setup(err.to_string())
}
