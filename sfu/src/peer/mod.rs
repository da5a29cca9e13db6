//! One participant's connection: its `rtc` peer connection, where it stands, offer/answer
//! with the client (rollback when offers cross), and draining what it has to say. Its media
//! (published tracks, down tracks, feedback) is in [`media`].

mod media;

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use huddle_signaling::{Negotiation, RemoteOffer, TrackSource};
use log::{debug, warn};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::TaggedRTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::sansio::Protocol;
use rtc::shared::time::SystemInstant;

use crate::bwe::SharedEstimate;
use crate::connection::{self, is_stable, sdp_error, udp_datagram};
use crate::downtrack::DownTrack;
use crate::link::LinkEstimate;
use crate::srtp::SrtpSealer;
use crate::{PeerKey, SfuConfig, SfuError, TrackId, Transmit};

/// Addresses one participant may use at once (candidate pairs during ICE, a network change).
const MAX_ADDRESSES_PER_PEER: usize = 8;

/// Where a participant's connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerState {
    /// No client offer answered yet: the SFU makes no offer of its own before its first answer.
    New,
    /// Negotiated; ICE and DTLS are not done yet.
    Connecting,
    /// DTLS is done and SRTP keyed: media flows.
    Connected,
    /// ICE or DTLS failed; the participant is removed.
    Failed,
}

/// The outcome of trying to make the SFU's offer.
#[derive(Debug)]
pub(crate) enum OfferAttempt {
    Made(u64, String),
    /// None is due, or one cannot be made now (the next answer or offer makes it).
    NotDue,
    /// Creating it failed; worth trying again later.
    Failed,
}

pub(crate) struct Peer {
    key: PeerKey,
    pc: RTCPeerConnection,
    ufrag: String,
    addrs: Vec<SocketAddr>,
    negotiation: Negotiation,
    state: PeerState,
    /// What the client said its track ids are (microphone, camera, screen...).
    sources: HashMap<String, TrackSource>,
    /// This connection's track id -> the room track it publishes.
    pub published: HashMap<String, TrackId>,
    pub downtracks: FxHashMap<TrackId, DownTrack>,
    /// A down track's id as the subscriber's RTCP names it -> the room track.
    by_label: HashMap<String, TrackId>,
    link: LinkEstimate,
    /// The send-side estimate of this peer's downlink (GCC over its TWCC feedback).
    estimate: SharedEstimate,
    /// The connection's next timeout as of its last drain (every input to it is followed by a
    /// drain, which refreshes this).
    pub deadline: Option<Instant>,
    /// In the SFU's list of connections to drain.
    queued: bool,
    /// Something since the last drain may have given the connection events or media to read
    /// (a datagram, a timeout, a call to it). Media forwarded to it gives it only datagrams
    /// to send, and a drain then asks it for nothing else.
    input: bool,
    /// In the SFU's list of peers that may owe their client an offer.
    offer_queued: bool,
    /// When the direct down tracks' sender reports are next due (`None`: none sent yet).
    next_report: Option<Instant>,
    /// Wall-clock time beside the SFU's clock, for those reports' NTP timestamps.
    wall_clock: SystemInstant,
    /// Seals the direct down tracks' copies, once DTLS is done (with AES-GCM: see
    /// [`SrtpSealer::new`]).
    sealer: Option<SrtpSealer>,
    /// Where the connection sends: ICE's selected pair, as of the last drain.
    remote_addr: Option<SocketAddr>,
}

impl Peer {
    pub fn new(config: &SfuConfig, now: Instant, key: PeerKey) -> Result<Self, SfuError> {
        let ufrag = connection::random_token(16);
        let (pc, estimate) = connection::new(config, now, &ufrag)?;
        Ok(Self {
            key,
            pc,
            ufrag,
            addrs: Vec::new(),
            negotiation: Negotiation::new(),
            state: PeerState::New,
            sources: HashMap::new(),
            published: HashMap::new(),
            downtracks: FxHashMap::default(),
            by_label: HashMap::new(),
            link: LinkEstimate::default(),
            estimate,
            deadline: Some(now),
            queued: false,
            input: true,
            offer_queued: false,
            next_report: None,
            wall_clock: SystemInstant::now(now),
            sealer: None,
            remote_addr: None,
        })
    }

    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// A new address the client sends from. Returns the oldest one, forgotten to make room.
    pub fn remember_addr(&mut self, addr: SocketAddr) -> Option<SocketAddr> {
        let evicted = (self.addrs.len() >= MAX_ADDRESSES_PER_PEER).then(|| self.addrs.remove(0));
        self.addrs.push(addr);
        evicted
    }

    pub fn is_connected(&self) -> bool {
        self.state == PeerState::Connected
    }

    pub fn downlink_estimate(&self) -> u64 {
        self.estimate.bits_per_second()
    }

    /// Puts this peer on the list of connections to drain, once.
    pub fn touch(&mut self, dirty: &mut Vec<PeerKey>) {
        self.input = true;
        self.touch_sent(dirty);
    }

    /// [`touch`](Self::touch) for a peer that was only given media to send.
    pub fn touch_sent(&mut self, dirty: &mut Vec<PeerKey>) {
        if !self.queued {
            self.queued = true;
            dirty.push(self.key);
        }
    }

    /// Puts this peer on the list of those that may owe their client an offer, once.
    pub fn queue_offer(&mut self, due: &mut Vec<PeerKey>) {
        if !self.offer_queued {
            self.offer_queued = true;
            due.push(self.key);
        }
    }

    /// This peer was taken off the list of those that may owe an offer.
    pub fn unqueue_offer(&mut self) {
        self.offer_queued = false;
    }

    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local_addr: SocketAddr,
        from: SocketAddr,
        payload: &[u8],
    ) -> Result<(), rtc::shared::error::Error> {
        let datagram = udp_datagram(now, local_addr, from, BytesMut::from(payload));
        self.pc.handle_read(datagram)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(err) = self.pc.handle_timeout(now) {
            debug!("{:?}: timeout handling: {err}", self.key);
        }
        self.send_direct_reports(now);
    }

    /// Closes the connection; what it still sends (a DTLS close) goes to `transmits`.
    pub fn close(&mut self, transmits: &mut std::collections::VecDeque<Transmit>) {
        if let Err(err) = self.pc.close() {
            debug!("{:?}: closing: {err}", self.key);
        }
        self.poll_writes(transmits);
    }

    /// Takes everything the connection has to say: events and messages, to handle once this
    /// peer is no longer borrowed, and datagrams, to send. Returns its next timeout.
    pub fn poll_output(
        &mut self,
        events: &mut Vec<RTCPeerConnectionEvent>,
        messages: &mut Vec<TaggedRTCMessage>,
        transmits: &mut std::collections::VecDeque<Transmit>,
    ) -> Option<Instant> {
        self.queued = false;
        if std::mem::take(&mut self.input) {
            events.extend(std::iter::from_fn(|| self.pc.poll_event()));
            messages.extend(std::iter::from_fn(|| self.pc.poll_read()));
        }
        self.poll_writes(transmits);
        // A nomination or a new pair comes as input, and every input is followed by a drain.
        self.remote_addr = self.pc.selected_remote_addr();
        let next = self.pc.poll_timeout();
        match (next, self.next_report) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_writes(&mut self, transmits: &mut std::collections::VecDeque<Transmit>) {
        while let Some(t) = self.pc.poll_write() {
            transmits.push_back(Transmit {
                to: t.transport.peer_addr,
                payload: t.message,
            });
        }
    }

    /// The connection is up (DTLS done, SRTP keyed). Returns true the first time.
    pub fn connected(&mut self) -> bool {
        let first = matches!(self.state, PeerState::New | PeerState::Connecting);
        if first {
            self.state = PeerState::Connected;
            self.sealer = self.pc.local_srtp_master().and_then(SrtpSealer::new);
            self.remote_addr = self.pc.selected_remote_addr();
        }
        first
    }

    /// The connection failed. Returns true the first time.
    pub fn fail(&mut self) -> bool {
        let first = self.state != PeerState::Failed;
        self.state = PeerState::Failed;
        first
    }

    /// Applies the client's offer and answers it. Returns the answer and the SFU offer it
    /// withdrew, if the two crossed.
    pub fn apply_offer(
        &mut self,
        now: Instant,
        sdp: String,
        sources: &[(String, TrackSource)],
        public_addr: SocketAddr,
    ) -> Result<(String, Option<u64>), SfuError> {
        let mut withdrawn = None;
        if let RemoteOffer::RollbackThenApply { withdrawn: offer_id } = self.negotiation.remote_offer() {
            debug!("{:?}: offers crossed; withdrawing offer {offer_id}", self.key);
            let rollback = RTCSessionDescription::rollback(None).map_err(sdp_error)?;
            self.pc.set_local_description(now, rollback).map_err(sdp_error)?;
            withdrawn = Some(offer_id);
        }
        for (track_id, source) in sources {
            self.sources.insert(track_id.clone(), *source);
        }
        let offer = RTCSessionDescription::offer(sdp).map_err(sdp_error)?;
        self.pc.set_remote_description(now, offer).map_err(sdp_error)?;
        if self.state == PeerState::New {
            connection::add_host_candidate(&mut self.pc, public_addr)?;
        }
        let answer = self.pc.create_answer(None).map_err(sdp_error)?;
        self.pc.set_local_description(now, answer).map_err(sdp_error)?;
        if self.state == PeerState::New {
            self.state = PeerState::Connecting;
        }
        let answer = self
            .pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| SfuError::Negotiation("no local description after answering".into()))?;
        Ok((answer, withdrawn))
    }

    /// Applies the client's answer to the SFU's offer `offer_id`. Returns the down tracks it
    /// covers: from now on they may be forwarded.
    pub fn apply_answer(&mut self, now: Instant, offer_id: u64, sdp: String) -> Result<Vec<TrackId>, SfuError> {
        self.negotiation
            .remote_answer(offer_id)
            .map_err(|e| SfuError::Negotiation(e.to_string()))?;
        let answer = RTCSessionDescription::answer(sdp).map_err(sdp_error)?;
        if let Err(err) = self.pc.set_remote_description(now, answer) {
            // The offer stays unanswered on our side: withdraw it and try again later.
            let _ = RTCSessionDescription::rollback(None).map(|r| self.pc.set_local_description(now, r));
            self.negotiation.offer_failed();
            return Err(sdp_error(err));
        }
        let mut answered = Vec::new();
        for (track, downtrack) in &mut self.downtracks {
            if downtrack.stage() != (crate::downtrack::Stage::Offered { offer_id }) {
                continue;
            }
            let mid = self
                .pc
                .rtp_transceiver(downtrack.transceiver)
                .and_then(|t| t.mid().clone());
            let mid_ext = self.pc.rtp_sender(downtrack.sender).and_then(|mut s| {
                s.get_parameters()
                    .rtp_parameters
                    .header_extensions
                    .iter()
                    .find(|e| e.uri == rtc::sdp::extmap::SDES_MID_URI)
                    .and_then(|e| u8::try_from(e.id).ok())
            });
            let mid = mid_ext
                .zip(mid)
                .map(|(id, mid)| (id, bytes::Bytes::from(mid.into_bytes())));
            if downtrack.answered(now, offer_id, mid) {
                answered.push(*track);
            }
        }
        Ok(answered)
    }

    /// Makes the SFU's offer when one is due and the connection can take it.
    pub fn make_offer(&mut self, now: Instant) -> OfferAttempt {
        if !matches!(self.state, PeerState::Connecting | PeerState::Connected) || !is_stable(&self.pc) {
            return OfferAttempt::NotDue;
        }
        let Some(offer_id) = self.negotiation.poll_offer() else {
            return OfferAttempt::NotDue;
        };
        let created = self
            .pc
            .create_offer(None)
            .and_then(|offer| self.pc.set_local_description(now, offer));
        match created.map(|_| self.pc.local_description()) {
            Ok(Some(desc)) => {
                // The offer describes every track not yet answered for (one offer is out at a
                // time, so the answer naming this id covers them).
                for downtrack in self.downtracks.values_mut() {
                    downtrack.offered(offer_id);
                }
                OfferAttempt::Made(offer_id, desc.sdp)
            }
            Ok(None) | Err(_) => {
                warn!("{:?}: could not create an offer", self.key);
                self.negotiation.offer_failed();
                OfferAttempt::Failed
            }
        }
    }

    pub fn add_candidate(&mut self, candidate: RTCIceCandidateInit) -> Result<(), SfuError> {
        self.pc
            .add_remote_candidate(candidate)
            .map_err(|e| SfuError::Negotiation(format!("candidate refused: {e}")))
    }

    /// Reads the send-side estimate, which moves with the peer's TWCC feedback. Returns true
    /// when it moved the layer cap.
    pub fn observe_estimate(&mut self, now: Instant) -> bool {
        self.link.observe_estimate(now, self.estimate.bits_per_second())
    }
}
