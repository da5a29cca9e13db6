//! Building a participant's `rtc` peer connection as the SFU needs it: the codecs and header
//! extensions it accepts, send-side congestion control with the SFU's pacer, NACK and RTCP reports,
//! the feedback the SFU acts on itself, ICE-lite with the consent timeouts, and the one host
//! candidate it advertises.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use rand::Rng;
use rand::distr::Alphanumeric;
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::interceptor::{CongestionControlBuilder, Registry, Slot, TwccReceiverBuilder, TwccSenderBuilder};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_rtcp_reports, configure_simulcast_extension_headers,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpHeaderExtensionCapability, RtpCodecKind, TYPE_RTCP_FB_TRANSPORT_CC,
};

use crate::bwe::SharedEstimate;
use crate::{SfuConfig, SfuError};

/// The RFC 6464 audio level header extension.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// A new connection with ICE username fragment `ufrag`, and the handle on its downlink's
/// send-side bandwidth estimate.
pub(crate) fn new(
    config: &SfuConfig,
    now: Instant,
    ufrag: &str,
) -> Result<(RTCPeerConnection, SharedEstimate), SfuError> {
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
    // Send-side estimation (GCC over TWCC) and the pacer it drives. The pacer is the SFU's
    // own (`crate::pacer`): forwarded media leaves at once unless the estimate says the
    // downlink is congested; only then is video held and released by `handle_timeout`.
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        media.register_feedback(
            RTCPFeedback {
                typ: TYPE_RTCP_FB_TRANSPORT_CC.to_owned(),
                parameter: String::new(),
            },
            kind,
        );
        media
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned(),
                },
                kind,
                None,
            )
            .map_err(setup_error)?;
    }
    let (gcc, estimate) = crate::bwe::ReportingGcc::new();
    let registry = crate::feedback::deliver_feedback(Registry::new())
        .with(Slot::CongestionControl, CongestionControlBuilder::new(gcc).build())
        .with(Slot::Pacer, crate::pacer::ForwardPacer::new())
        .with(Slot::TwccSender, TwccSenderBuilder::new().build())
        .with(Slot::TwccReceiver, TwccReceiverBuilder::new().build());
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
        // The SFU answers as the DTLS server, so the SRTP profile is its choice: a browser as
        // the server picks AES-CM, though it offers AES-GCM too.
        .with_answering_dtls_role(RTCDtlsRole::Server)
        // AES-GCM first: one AEAD pass per packet, where AES-CM needs a cipher pass and an
        // HMAC-SHA1 (browsers offer both); AES-CM stays for peers without it.
        .with_srtp_protection_profiles(vec![
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        ])
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

pub(crate) fn add_host_candidate(pc: &mut RTCPeerConnection, addr: SocketAddr) -> Result<(), SfuError> {
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

/// A datagram received on UDP, as `rtc` takes it.
pub(crate) fn udp_datagram(
    now: Instant,
    local_addr: SocketAddr,
    peer_addr: SocketAddr,
    payload: BytesMut,
) -> rtc::shared::TaggedBytesMut {
    rtc::shared::TaggedBytesMut {
        now,
        transport: rtc::shared::TransportContext {
            local_addr,
            peer_addr,
            ecn: None,
            transport_protocol: rtc::shared::TransportProtocol::UDP,
        },
        message: payload,
    }
}

/// True when no offer is outstanding in either direction.
pub(crate) fn is_stable(pc: &RTCPeerConnection) -> bool {
    pc.pending_local_description().is_none() && pc.pending_remote_description().is_none()
}

pub(crate) fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

pub(crate) fn sdp_error(err: rtc::shared::error::Error) -> SfuError {
    SfuError::Negotiation(err.to_string())
}

fn setup_error(err: rtc::shared::error::Error) -> SfuError {
    SfuError::Setup(err.to_string())
}
