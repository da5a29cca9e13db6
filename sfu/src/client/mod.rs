//! A call participant on webrtc-rs `rtc`, sans-IO like the SFU: it publishes an Opus and a VP8
//! track of caller-made RTP, receives whatever the SFU forwards, and counts the keyframe
//! requests it gets. It can also reach the SFU only through a TURN relay (the `rtc` TURN
//! client, with TURN REST credentials), as a client behind a strict NAT would. Tests, the
//! benchmark and load tools use it as the far end of a call.

mod media;
mod relay;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use log::debug;
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::interceptor::{ReceiverReportBuilder, Registry, SenderReportBuilder, Slot};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
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
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit, RTCIceServer,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpHeaderExtensionCapability, RtpCodecKind};
use rtc::sansio::Protocol;

pub use media::SIMULCAST_RIDS;
use media::{LocalTrack, LocalTracks, SimulcastTrack};
use relay::Relay;
pub use relay::{RelayConfig, RelayState};

use crate::connection::{AUDIO_LEVEL_URI, is_stable, udp_datagram};

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
    /// Take only `SRTP_AES128_CM_HMAC_SHA1_80` for SRTP, as a peer without AES-GCM would.
    pub aes_cm_srtp_only: bool,
    /// List AES-CM before AES-GCM for SRTP, as Chromium does.
    pub aes_cm_srtp_first: bool,
    /// How often the client sends its receiver reports: `rtc`'s 1 s by default, one RTCP
    /// packet per received stream. (Browsers report audio every 5 s, video every second.)
    pub report_interval: Duration,
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
            aes_cm_srtp_only: false,
            aes_cm_srtp_first: false,
            report_interval: Duration::from_secs(1),
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
        // `rtc`'s default interceptors, with the receiver reports at the configured interval.
        let registry = configure_nack(crate::feedback::deliver_feedback(Registry::new()), &mut media);
        configure_simulcast_extension_headers(&mut media)?;
        let registry = configure_twcc_receiver_only(registry, &mut media)?
            .with(
                Slot::ReceiverReport,
                ReceiverReportBuilder::new()
                    .with_interval(config.report_interval)
                    .build(),
            )
            .with(Slot::SenderReport, SenderReportBuilder::new().build());
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
        let mut settings = SettingEngineBuilder::new()
            .with_ice_timeouts(
                Some(Duration::from_secs(5)),
                Some(Duration::from_secs(10)),
                Some(Duration::from_secs(1)),
            )
            .with_ice_connection_attempts(Some(Duration::from_millis(50)), Some(28));
        if config.aes_cm_srtp_only {
            settings = settings.with_srtp_protection_profiles(vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80]);
        } else if config.aes_cm_srtp_first {
            settings = settings.with_srtp_protection_profiles(vec![
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
            ]);
        }
        let settings = settings.build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(rtc_config.build())
            .with_setting_engine(settings)
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .build(now)?;
        let LocalTracks {
            audio,
            video,
            screen,
            simulcast,
        } = LocalTracks::add(&mut pc, &config)?;
        let relay = config
            .relay
            .as_ref()
            .map(|relay| Relay::new(now, config.local_addr, relay))
            .transpose()?;
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

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, payload: &[u8]) {
        if let Some(relay) = self.relay.as_mut()
            && from == relay.config.server
        {
            let read = relay
                .client
                .handle_read(udp_datagram(now, to, from, BytesMut::from(payload)));
            if let Err(err) = read {
                debug!("{}: TURN datagram refused: {err}", self.config.name);
            }
            self.drain(now);
            return;
        }
        let result = self
            .pc
            .handle_read(udp_datagram(now, to, from, BytesMut::from(payload)));
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
                Some(relay) => relay.send(now, &self.config.name, t.transport.peer_addr, &t.message),
            }
        }
        if let Some(relay) = self.relay.as_mut() {
            while let Some(t) = relay.client.poll_write() {
                self.transmits
                    .push_back((self.config.local_addr, t.transport.peer_addr, t.message));
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
