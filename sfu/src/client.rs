//! A call participant on webrtc-rs `rtc`, sans-IO like the SFU: it publishes an Opus and a VP8
//! track of caller-made RTP, receives whatever the SFU forwards, and counts the keyframe
//! requests it gets. It can also reach the SFU only through a TURN relay (the `rtc` TURN
//! client, with TURN REST credentials), as a client behind a strict NAT would. Tests, the
//! benchmark and load tools use it as the far end of a call.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use log::debug;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MIME_TYPE_VP9, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::{RTCConfigurationBuilder, RTCIceTransportPolicy};
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, CandidateRelayConfig, RTCIceCandidate, RTCIceCandidateInit, RTCIceServer,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::TransportProtocol;
use rtc::turn::client::{Client as TurnClient, ClientConfig as TurnConfig, Event as TurnEvent};

use crate::engine::{AUDIO_LEVEL_URI, is_stable};

pub const AUDIO_PAYLOAD_TYPE: u8 = 111;
pub const VIDEO_PAYLOAD_TYPE: u8 = 96;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The client's own UDP address (its host candidate).
    pub local_addr: SocketAddr,
    /// Distinguishes this client's track ids (`<name>-audio`, `<name>-video`).
    pub name: String,
    pub audio: bool,
    pub video: bool,
    /// Reach the SFU only through this TURN relay (relay candidates only).
    pub relay: Option<RelayConfig>,
    /// Send the video as three simulcast layers (RIDs `q`, `h`, `f`), like a browser camera.
    pub simulcast: bool,
    /// Also share a screen: a second video track.
    pub screen: bool,
    /// The one video codec this client offers.
    pub video_codec: VideoCodecChoice,
}

/// Video codecs a client can be limited to, as browsers may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VideoCodecChoice {
    #[default]
    Vp8,
    Vp9,
    H264,
}

impl VideoCodecChoice {
    fn mime(self) -> &'static str {
        match self {
            Self::Vp8 => MIME_TYPE_VP8,
            Self::Vp9 => MIME_TYPE_VP9,
            Self::H264 => MIME_TYPE_H264,
        }
    }

    fn fmtp(self) -> &'static str {
        match self {
            Self::Vp9 => "profile-id=0",
            Self::H264 => "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            Self::Vp8 => "",
        }
    }
}

/// The simulcast RIDs a client sends, lowest first.
pub const SIMULCAST_RIDS: [&str; 3] = ["q", "h", "f"];
const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

#[derive(Debug, Clone)]
struct SimulcastTrack {
    sender: RTCRtpSenderId,
    /// `(rid, ssrc, next sequence number)`, lowest layer first.
    layers: Vec<(String, u32, u16)>,
    timestamp: u32,
}

/// A TURN server and the credentials for it.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub server: SocketAddr,
    pub username: String,
    pub password: String,
    /// Peers the relay may exchange datagrams with (the SFU's media address).
    pub permit: Vec<SocketAddr>,
}

/// Where the relay allocation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayState {
    Allocating,
    Allocated(SocketAddr),
    Refused(String),
}

struct Relay {
    client: TurnClient,
    config: RelayConfig,
    state: RelayState,
    granted: HashSet<SocketAddr>,
}

impl ClientConfig {
    pub fn new(local_addr: SocketAddr, name: impl Into<String>) -> Self {
        Self {
            local_addr,
            name: name.into(),
            audio: true,
            video: true,
            relay: None,
            simulcast: false,
            screen: false,
            video_codec: VideoCodecChoice::Vp8,
        }
    }
}

/// A track the client receives.
#[derive(Debug, Clone, Default)]
pub struct RemoteTrack {
    pub stream_id: String,
    pub kind: String,
    /// Payloads in arrival order.
    pub payloads: Vec<Bytes>,
    /// Their sequence numbers, in the same order.
    pub sequence_numbers: Vec<u16>,
    pub last_sequence: Option<u16>,
    receiver: RTCRtpReceiverId,
    ssrc: u32,
}

#[derive(Debug, Clone, Copy)]
struct LocalTrack {
    sender: RTCRtpSenderId,
    ssrc: u32,
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    step: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
    /// A second video track: the screen share.
    Screen,
}

pub struct ClientPeer {
    pc: RTCPeerConnection,
    config: ClientConfig,
    audio: Option<LocalTrack>,
    video: Option<LocalTrack>,
    screen: Option<LocalTrack>,
    simulcast: Option<SimulcastTrack>,
    remote: HashMap<String, RemoteTrack>,
    keyframe_requests: u64,
    connected: bool,
    failed: bool,
    transmits: VecDeque<(SocketAddr, SocketAddr, BytesMut)>,
    candidates: VecDeque<RTCIceCandidateInit>,
    relay: Option<Relay>,
}

impl ClientPeer {
    pub fn new(now: Instant, config: ClientConfig) -> Result<Self, rtc::shared::error::Error> {
        let mut media = MediaEngine::default();
        for (mime, clock_rate, channels, fmtp, pt, kind) in [
            (
                MIME_TYPE_OPUS,
                48_000,
                2,
                "minptime=10;useinbandfec=1",
                AUDIO_PAYLOAD_TYPE,
                RtpCodecKind::Audio,
            ),
            (
                config.video_codec.mime(),
                90_000,
                0,
                config.video_codec.fmtp(),
                VIDEO_PAYLOAD_TYPE,
                RtpCodecKind::Video,
            ),
        ] {
            media.register_codec(
                rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters {
                    rtp_codec: codec(mime, clock_rate, channels, fmtp),
                    payload_type: pt,
                },
                kind,
            )?;
        }
        // Audio levels, and the MID on audio too, as browsers and other stacks offer it.
        for uri in [AUDIO_LEVEL_URI, rtc::sdp::extmap::SDES_MID_URI] {
            media.register_header_extension(
                RTCRtpHeaderExtensionCapability { uri: uri.to_owned() },
                RtpCodecKind::Audio,
                None,
            )?;
        }
        let registry = register_default_interceptors(crate::feedback::deliver_feedback(Registry::new()), &mut media)?;
        let mut rtc_config = RTCConfigurationBuilder::new();
        if let Some(relay) = &config.relay {
            rtc_config = rtc_config
                .with_ice_servers(vec![RTCIceServer {
                    urls: vec![format!("turn:{}?transport=udp", relay.server)],
                    username: relay.username.clone(),
                    credential: relay.password.clone(),
                }])
                .with_ice_transport_policy(RTCIceTransportPolicy::Relay);
        }
        // Checks paced every 50 ms, as browsers pace them (RFC 8445 default Ta), for as long
        // (1.4 s a candidate) as the default 200 ms pacing tries.
        let settings = SettingEngineBuilder::new()
            .with_ice_timeouts(
                Some(Duration::from_secs(5)),
                Some(Duration::from_secs(10)),
                Some(Duration::from_secs(1)),
            )
            .with_ice_connection_attempts(Some(Duration::from_millis(50)), Some(28))
            .build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(rtc_config.build())
            .with_setting_engine(settings)
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .build(now)?;
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
        let relay = match &config.relay {
            Some(relay) => {
                let server = relay.server.to_string();
                let mut client = TurnClient::new(
                    TurnConfig {
                        stun_serv_addr: server.clone(),
                        turn_serv_addr: server,
                        local_addr: config.local_addr,
                        transport_protocol: TransportProtocol::UDP,
                        username: relay.username.clone(),
                        password: relay.password.clone(),
                        realm: String::new(),
                        software: String::new(),
                        rto_in_ms: 0,
                        allocation_refresh_interval_cap: None,
                    },
                    rtc::crypto::default_provider().map_err(|e| rtc::shared::error::Error::Other(e.to_string()))?,
                )?;
                client.allocate(now)?;
                Some(Relay {
                    client,
                    config: relay.clone(),
                    state: RelayState::Allocating,
                    granted: HashSet::new(),
                })
            }
            None => None,
        };
        if relay.is_none() {
            let host = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: "udp".to_owned(),
                    address: config.local_addr.ip().to_string(),
                    port: config.local_addr.port(),
                    component: 1,
                    ..Default::default()
                },
                ..Default::default()
            }
            .new_candidate_host()?;
            pc.add_local_candidate(RTCIceCandidate::from(&host).to_json()?)?;
        }
        let mut peer = Self {
            pc,
            config,
            audio,
            video,
            screen,
            simulcast,
            remote: HashMap::new(),
            keyframe_requests: 0,
            connected: false,
            failed: false,
            transmits: VecDeque::new(),
            candidates: VecDeque::new(),
            relay,
        };
        peer.drain(now);
        Ok(peer)
    }

    /// The relay allocation's state (`None` without a relay).
    pub fn relay_state(&self) -> Option<&RelayState> {
        self.relay.as_ref().map(|r| &r.state)
    }

    /// This client's track id for its audio or video (as its SDP's `msid` names it).
    pub fn track_id(&self, kind: MediaKind) -> String {
        match kind {
            MediaKind::Audio => format!("{}-audio", self.config.name),
            MediaKind::Video => format!("{}-video", self.config.name),
            MediaKind::Screen => format!("{}-screen", self.config.name),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.config.local_addr
    }

    pub fn create_offer(&mut self, now: Instant) -> Result<String, rtc::shared::error::Error> {
        let offer = self.pc.create_offer(None)?;
        self.pc.set_local_description(now, offer)?;
        self.drain(now);
        Ok(self.pc.local_description().map(|d| d.sdp).unwrap_or_default())
    }

    pub fn apply_answer(&mut self, now: Instant, sdp: String) -> Result<(), rtc::shared::error::Error> {
        self.pc
            .set_remote_description(now, RTCSessionDescription::answer(sdp)?)?;
        self.drain(now);
        Ok(())
    }

    /// The SFU's offer; answered unless this client has its own offer outstanding (then the
    /// SFU withdraws it and offers again).
    pub fn apply_offer(&mut self, now: Instant, sdp: String) -> Result<Option<String>, rtc::shared::error::Error> {
        if !is_stable(&self.pc) {
            return Ok(None);
        }
        self.pc
            .set_remote_description(now, RTCSessionDescription::offer(sdp)?)?;
        let answer = self.pc.create_answer(None)?;
        self.pc.set_local_description(now, answer)?;
        self.drain(now);
        Ok(self.pc.local_description().map(|d| d.sdp))
    }

    pub fn add_remote_candidate(&mut self, candidate: RTCIceCandidateInit) -> Result<(), rtc::shared::error::Error> {
        self.pc.add_remote_candidate(candidate)
    }

    /// Local candidates gathered since the last call (relayed ones, when TURN is configured).
    pub fn poll_candidate(&mut self) -> Option<RTCIceCandidateInit> {
        self.candidates.pop_front()
    }

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

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, payload: &[u8]) {
        if let Some(relay) = self.relay.as_mut()
            && from == relay.config.server
        {
            let read = relay
                .client
                .handle_read(crate::udp_datagram(now, to, from, BytesMut::from(payload)));
            if let Err(err) = read {
                debug!("{}: TURN datagram refused: {err}", self.config.name);
            }
            self.drain(now);
            return;
        }
        let result = self
            .pc
            .handle_read(crate::udp_datagram(now, to, from, BytesMut::from(payload)));
        if let Err(err) = result {
            debug!("{}: datagram refused: {err}", self.config.name);
        }
        self.drain(now);
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let relay = self.relay.as_mut().and_then(|r| r.client.poll_timeout());
        self.pc.poll_timeout().into_iter().chain(relay).min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.pc.poll_timeout().is_some_and(|at| at <= now)
            && let Err(err) = self.pc.handle_timeout(now)
        {
            debug!("{}: timeout: {err}", self.config.name);
        }
        if let Some(relay) = self.relay.as_mut()
            && relay.client.poll_timeout().is_some_and(|at| at <= now)
            && let Err(err) = relay.client.handle_timeout(now)
        {
            debug!("{}: TURN timeout: {err}", self.config.name);
        }
        self.drain(now);
    }

    /// `(from, to, payload)`: `from` is the local address the datagram leaves from (the relay
    /// allocation's address travels inside TURN framing and is the client's concern).
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, SocketAddr, BytesMut)> {
        self.transmits.pop_front()
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    pub fn has_failed(&self) -> bool {
        self.failed
    }

    pub fn keyframe_requests(&self) -> u64 {
        self.keyframe_requests
    }

    pub fn remote_tracks(&self) -> &HashMap<String, RemoteTrack> {
        &self.remote
    }

    pub fn close(&mut self) {
        let _ = self.pc.close();
    }

    fn drain(&mut self, now: Instant) {
        self.drain_relay(now);
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                    RTCPeerConnectionState::Connected => self.connected = true,
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        self.failed = state == RTCPeerConnectionState::Failed;
                        self.connected = false;
                    }
                    _ => {}
                },
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let kind = self
                        .pc
                        .rtp_receiver(init.receiver_id)
                        .map(|r| r.track().kind().to_string())
                        .unwrap_or_default();
                    let entry = self.remote.entry(init.track_id).or_default();
                    entry.stream_id = init.stream_ids.first().cloned().unwrap_or_default();
                    entry.kind = kind;
                    entry.receiver = init.receiver_id;
                    entry.ssrc = init.ssrc;
                }
                RTCPeerConnectionEvent::OnIceCandidateEvent(event) => {
                    if let Ok(init) = event.candidate.to_json() {
                        self.candidates.push_back(init);
                    }
                }
                _ => {}
            }
        }
        while let Some(message) = self.pc.poll_read() {
            match message.message {
                RTCMessage::RtpPacket(track_id, packet) => {
                    let entry = self.remote.entry(track_id).or_default();
                    entry.last_sequence = Some(packet.header.sequence_number);
                    entry.sequence_numbers.push(packet.header.sequence_number);
                    entry.payloads.push(packet.payload);
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    for packet in packets {
                        let any = packet.as_any();
                        if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                            self.keyframe_requests += 1;
                        }
                    }
                }
                _ => {}
            }
        }
        while let Some(t) = self.pc.poll_write() {
            match self.relay.as_mut() {
                None => self
                    .transmits
                    .push_back((t.transport.local_addr, t.transport.peer_addr, t.message)),
                Some(relay) => {
                    let RelayState::Allocated(relayed) = relay.state else {
                        continue;
                    };
                    // Without a permission the relay would drop it; ICE retries.
                    if !relay.granted.contains(&t.transport.peer_addr) {
                        continue;
                    }
                    let sent = relay
                        .client
                        .relay(relayed)
                        .and_then(|mut r| r.send_to(now, &t.message, t.transport.peer_addr));
                    if let Err(err) = sent {
                        debug!("{}: relay send: {err}", self.config.name);
                    }
                }
            }
        }
        if let Some(relay) = self.relay.as_mut() {
            while let Some(t) = relay.client.poll_write() {
                self.transmits
                    .push_back((self.config.local_addr, t.transport.peer_addr, t.message));
            }
        }
    }

    /// Applies the TURN client's events: the allocation (then the relay candidate and the
    /// permissions), and data relayed from peers.
    fn drain_relay(&mut self, now: Instant) {
        let Some(relay) = self.relay.as_mut() else {
            return;
        };
        while let Some(event) = relay.client.poll_event() {
            match event {
                TurnEvent::AllocateResponse(_, relayed) => {
                    relay.state = RelayState::Allocated(relayed);
                    for peer in relay.config.permit.clone() {
                        if let Err(err) = relay
                            .client
                            .relay(relayed)
                            .and_then(|mut r| r.create_permission(now, peer))
                        {
                            debug!("{}: permission for {peer}: {err}", self.config.name);
                        }
                    }
                    let candidate = CandidateRelayConfig {
                        base_config: CandidateConfig {
                            network: "udp".to_owned(),
                            address: relayed.ip().to_string(),
                            port: relayed.port(),
                            component: 1,
                            ..Default::default()
                        },
                        rel_addr: self.config.local_addr.ip().to_string(),
                        rel_port: self.config.local_addr.port(),
                        ..Default::default()
                    }
                    .new_candidate_relay()
                    .and_then(|c| RTCIceCandidate::from(&c).to_json());
                    match candidate {
                        Ok(init) => {
                            if let Err(err) = self.pc.add_local_candidate(init.clone()) {
                                debug!("{}: relay candidate: {err}", self.config.name);
                            }
                            self.candidates.push_back(init);
                        }
                        Err(err) => debug!("{}: relay candidate: {err}", self.config.name),
                    }
                }
                TurnEvent::AllocateError(_, err) => relay.state = RelayState::Refused(err.to_string()),
                TurnEvent::TransactionTimeout(_) if relay.state == RelayState::Allocating => {
                    relay.state = RelayState::Refused("no answer from the TURN server".into());
                }
                TurnEvent::CreatePermissionResponse(_, peer) => {
                    relay.granted.insert(peer);
                }
                TurnEvent::DataIndicationOrChannelData(_, from, data) => {
                    if let RelayState::Allocated(relayed) = relay.state {
                        let read = self.pc.handle_read(crate::udp_datagram(now, relayed, from, data));
                        if let Err(err) = read {
                            debug!("{}: relayed datagram refused: {err}", self.config.name);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn codec(mime: &str, clock_rate: u32, channels: u16, fmtp: &str) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: mime.to_owned(),
        clock_rate,
        channels,
        sdp_fmtp_line: fmtp.to_owned(),
        rtcp_feedback: vec![],
    }
}
