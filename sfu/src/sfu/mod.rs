//! The SFU: every participant's WebRTC connection (webrtc-rs `rtc`, sans-IO) behind one shared
//! UDP port, and the forwarding between them.
//!
//! Time comes in as `now`, datagrams come in through [`Sfu::handle_datagram`], and everything
//! that should leave is pulled out with [`Sfu::poll_transmit`] and [`Sfu::poll_event`]. The
//! caller owns the socket, the clock and the signaling channel; this type owns all media state
//! through `&mut self`. Every call that changes a connection ends by draining every connection
//! that may have output, so nothing is left pending between calls.
//! Whatever waits for a time (connections, speaker decisions, held keyframe requests) is in one
//! deadline heap, so [`Sfu::poll_timeout`] costs the same however many peers there are.

mod drain;
mod fanout;
mod rooms;

use std::collections::{HashMap, HashSet, VecDeque};

use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use huddle_signaling::{Layer, TrackSource};
use log::trace;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::TaggedRTCMessage;
use rtc::peer_connection::transport::RTCIceCandidateInit;

pub use crate::config::SfuConfig;
pub use crate::connection::AUDIO_LEVEL_URI;
pub use crate::downtrack::{stream_id, track_label};
pub use crate::event::{NegotiationReply, SfuEvent, SfuStats, Transmit};
use crate::peer::{OfferAttempt, Peer};
use crate::publication::Publication;
use crate::speaker::SpeakerDetector;
use crate::timers::{Timer, Timers};
use crate::{ParticipantId, Room, SfuError, TrackId, demux};

/// A call's room, named by the caller: wide enough to hold the caller's own id (the server
/// puts its 12-byte call id here), so the caller needs no map of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoomId(pub u128);

/// One participant's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey {
    pub room: RoomId,
    pub participant: ParticipantId,
}

/// Why a room is there whenever one of its peers is.
const ROOM_OF_PEER: &str = "a room lives as long as any of its peers: the last leave removes it";
/// Why a participant the room lists has a peer.
const PEER_IN_ROOM: &str = "the room lists exactly the SFU's peers in it: joining and leaving change both";
/// Why a room track has its publication.
const PUBLISHED: &str = "a room track has its publication from when it is published until it is unpublished";

/// One room's media: the bookkeeping, each published track, and who is speaking.
struct RoomMedia {
    room: Room,
    publications: HashMap<TrackId, Publication>,
    speaker: SpeakerDetector,
}

pub struct Sfu {
    config: SfuConfig,
    rooms: HashMap<RoomId, RoomMedia>,
    peers: FxHashMap<PeerKey, Peer>,
    by_ufrag: HashMap<String, PeerKey>,
    by_addr: HashMap<SocketAddr, PeerKey>,
    /// Connections that may have output, each listed once (see [`Peer::touch`]).
    dirty: Vec<PeerKey>,
    /// Peers that may owe their client an offer, each listed once.
    offers_due: Vec<PeerKey>,
    /// Peers whose connection failed, removed once the drain that found it is done.
    failed: Vec<PeerKey>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<SfuEvent>,
    stats: SfuStats,
    timers: Timers,
    /// Live video down tracks still waiting for their first keyframe.
    awaiting_keyframe: HashSet<(PeerKey, TrackId)>,
    /// Kept between drains so draining allocates nothing.
    scratch_events: Vec<RTCPeerConnectionEvent>,
    scratch_messages: Vec<TaggedRTCMessage>,
    /// See [`Sfu::busy`].
    busy: Option<PeerKey>,
}

impl Sfu {
    pub fn new(config: SfuConfig) -> Result<Self, SfuError> {
        config.room.validate()?;
        Ok(Self {
            config,
            rooms: HashMap::new(),
            peers: FxHashMap::default(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            dirty: Vec::new(),
            offers_due: Vec::new(),
            failed: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: SfuStats::default(),
            timers: Timers::default(),
            awaiting_keyframe: HashSet::new(),
            scratch_events: Vec::new(),
            scratch_messages: Vec::new(),
            busy: None,
        })
    }

    /// The peer whose datagram was being handled when a call into the SFU did not return
    /// (a panic the caller caught): the room to give up, so that the others go on.
    pub fn busy(&self) -> Option<PeerKey> {
        self.busy
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
        self.peers.get(&peer).map(Peer::downlink_estimate)
    }

    /// Tracks `participant` receives, with the ids its SDP names them by.
    pub fn subscriptions(&self, peer: PeerKey) -> Vec<TrackId> {
        let mut tracks: Vec<TrackId> = self
            .peers
            .get(&peer)
            .map(|p| p.downtracks.keys().copied().collect())
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
        let max = self.config.room.max_participants;
        if self
            .rooms
            .get(&key.room)
            .is_some_and(|r| r.room.participant_count() >= max)
        {
            return Err(SfuError::RoomFull { max });
        }
        let peer = Peer::new(&self.config, now, key)?;
        let room = self.rooms.entry(key.room).or_insert_with(|| RoomMedia {
            room: Room::new(self.config.room).expect("the room config was validated by Sfu::new"),
            publications: HashMap::new(),
            speaker: SpeakerDetector::default(),
        });
        room.room.join(key.participant)?;
        self.by_ufrag.insert(peer.ufrag().to_owned(), key);
        self.timers.moved(Timer::Peer(key), None, peer.deadline);
        self.peers.insert(key, peer);
        self.process_room_events(now, key.room);
        self.drain(now, None);
        Ok(())
    }

    /// Removes a participant: its connection closes, its tracks leave every subscriber.
    pub fn leave(&mut self, now: Instant, key: PeerKey) -> Result<(), SfuError> {
        if !self.peers.contains_key(&key) {
            return Err(SfuError::UnknownParticipant(key.participant));
        }
        self.remove_peer(now, key);
        self.drain(now, None);
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
        let peer = self
            .peers
            .get_mut(&key)
            .ok_or(SfuError::UnknownParticipant(key.participant))?;
        let applied = peer.apply_offer(now, sdp, sources, public);
        // Even a refused offer may have changed the connection (a rollback), and an SFU offer
        // it withdrew is due again.
        peer.touch(&mut self.dirty);
        peer.queue_offer(&mut self.offers_due);
        let (answer, withdrawn) = match applied {
            Ok(applied) => applied,
            Err(err) => {
                self.drain(now, None);
                return Err(err);
            }
        };
        self.drain(now, Some(key));
        Ok(NegotiationReply {
            answer: Some(answer),
            offer: self.offer_now(now, key),
            withdrawn,
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
        let peer = self
            .peers
            .get_mut(&key)
            .ok_or(SfuError::UnknownParticipant(key.participant))?;
        let applied = peer.apply_answer(now, offer_id, sdp);
        peer.touch(&mut self.dirty);
        // A refused answer withdraws the offer, which is then due again.
        peer.queue_offer(&mut self.offers_due);
        let answered = match applied {
            Ok(answered) => answered,
            Err(err) => {
                self.drain(now, None);
                return Err(err);
            }
        };
        self.drain(now, Some(key));
        // The drain may have found the connection failed and removed it.
        if self.peers.contains_key(&key) {
            for track in answered {
                self.go_live(now, key, track);
            }
            self.drain(now, Some(key));
        }
        Ok(NegotiationReply {
            answer: None,
            offer: self.offer_now(now, key),
            withdrawn: None,
        })
    }

    /// A trickled ICE candidate from the client (empty: end of candidates).
    pub fn add_candidate(&mut self, key: PeerKey, candidate: RTCIceCandidateInit) -> Result<(), SfuError> {
        let peer = self
            .peers
            .get_mut(&key)
            .ok_or(SfuError::UnknownParticipant(key.participant))?;
        if candidate.candidate.is_empty() {
            return Ok(());
        }
        peer.add_candidate(candidate)?;
        // Drained with the next input: this call has no `now`.
        peer.touch(&mut self.dirty);
        Ok(())
    }

    /// The highest simulcast layer `key` wants of `track`.
    pub fn set_layer(&mut self, now: Instant, key: PeerKey, track: TrackId, layer: Layer) -> Result<(), SfuError> {
        let peer = self
            .peers
            .get_mut(&key)
            .ok_or(SfuError::UnknownParticipant(key.participant))?;
        let downtrack = peer.downtracks.get_mut(&track).ok_or(SfuError::UnknownTrack(track))?;
        downtrack.wanted = layer;
        self.reselect_layer(now, key, track);
        self.drain(now, None);
        Ok(())
    }

    /// A datagram that arrived on the shared socket. Unknown senders and packets a connection
    /// refuses are dropped and counted (`SfuStats::dropped_datagrams`); nothing here can fail
    /// the caller, and a refusal allocates nothing.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, payload: &[u8]) -> Result<(), SfuError> {
        let Some(key) = self.route(from, payload) else {
            self.stats.dropped_datagrams += 1;
            return Err(SfuError::UnknownSource);
        };
        // Every datagram arrived at the one candidate the SFU advertises: that is the local
        // address ICE checks against (the bound one may be `0.0.0.0`, or a private address
        // behind 1:1 NAT).
        let local_addr = self.config.public_addr;
        self.busy = Some(key);
        let peer = self.peers.get_mut(&key).expect(ROUTED);
        let result = peer.handle_datagram(now, local_addr, from, payload);
        peer.touch(&mut self.dirty);
        self.drain(now, None);
        self.busy = None;
        result.map_err(|err| {
            self.stats.dropped_datagrams += 1;
            trace!("{key:?}: datagram refused: {err}");
            SfuError::Refused
        })
    }

    /// The peer a datagram is for: by its address, or for a new address by the ICE username
    /// fragment a connectivity check names (the connection then verifies the check).
    fn route(&mut self, from: SocketAddr, payload: &[u8]) -> Option<PeerKey> {
        if let Some(key) = self.by_addr.get(&from) {
            return Some(*key);
        }
        let key = *demux::stun_local_ufrag(payload).and_then(|u| self.by_ufrag.get(u))?;
        let peer = self.peers.get_mut(&key).expect(ROUTED);
        if let Some(old) = peer.remember_addr(from) {
            self.by_addr.remove(&old);
        }
        self.by_addr.insert(from, key);
        Some(key)
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let (peers, rooms) = (&self.peers, &self.rooms);
        let interval = self.config.keyframe_request_interval;
        self.timers
            .next(|at, timer| is_current(peers, rooms, interval, at, timer))
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let interval = self.config.keyframe_request_interval;
        // Connections first; rooms' and tracks' timers after the first-keyframe retries, which
        // a held keyframe request may then go out with.
        let mut later = Vec::new();
        loop {
            let (peers, rooms) = (&self.peers, &self.rooms);
            let current = |at, timer| is_current(peers, rooms, interval, at, timer);
            let Some(timer) = self.timers.pop_due(now, current) else {
                break;
            };
            match timer {
                Timer::Peer(key) => {
                    let peer = self.peers.get_mut(&key).expect(TIMER_OWNER);
                    // The drain below sets the next one.
                    peer.deadline = None;
                    peer.handle_timeout(now);
                    peer.touch(&mut self.dirty);
                }
                Timer::Speaker(_) | Timer::Keyframe(..) => later.push(timer),
            }
        }
        self.retry_first_keyframes(now);
        for timer in later {
            match timer {
                Timer::Speaker(room_id) => {
                    let room = self.rooms.get_mut(&room_id).expect(TIMER_OWNER);
                    let decision = room.speaker.handle_timeout(now);
                    self.timers.moved(timer, None, room.speaker.poll_timeout());
                    if let Some(participant) = decision {
                        self.events.push_back(SfuEvent::Speaker {
                            room: room_id,
                            participant,
                        });
                    }
                }
                Timer::Keyframe(room, track) => {
                    let media = self.rooms.get(&room).expect(TIMER_OWNER);
                    let publication = media.publications.get(&track).expect(TIMER_OWNER);
                    // A first-keyframe retry may have taken the held request with it.
                    if publication.keyframes.due(interval).is_some_and(|at| at <= now) {
                        self.send_held_keyframe_request(now, room, track);
                    }
                }
                Timer::Peer(_) => unreachable!("connection timers are handled as they are taken"),
            }
        }
        self.drain(now, None);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SfuEvent> {
        self.events.pop_front()
    }

    fn check_sdp(&self, sdp: &str) -> Result<(), SfuError> {
        if sdp.len() > self.config.max_sdp_bytes {
            return Err(SfuError::SdpTooLarge {
                len: sdp.len(),
                max: self.config.max_sdp_bytes,
            });
        }
        Ok(())
    }

    /// The SFU's offer to `key` for a reply, when one is due.
    fn offer_now(&mut self, now: Instant, key: PeerKey) -> Option<(u64, String)> {
        // A drain may have found the connection failed and removed it.
        let peer = self.peers.get_mut(&key)?;
        match peer.make_offer(now) {
            OfferAttempt::Made(offer_id, sdp) => Some((offer_id, sdp)),
            OfferAttempt::NotDue => None,
            OfferAttempt::Failed => {
                peer.queue_offer(&mut self.offers_due);
                None
            }
        }
    }
}

/// Whether `timer`'s deadline is still `at`: deadlines that moved leave stale entries behind.
fn is_current(
    peers: &FxHashMap<PeerKey, Peer>,
    rooms: &HashMap<RoomId, RoomMedia>,
    interval: Duration,
    at: Instant,
    timer: Timer,
) -> bool {
    let deadline = match timer {
        Timer::Peer(key) => peers.get(&key).and_then(|p| p.deadline),
        Timer::Speaker(room) => rooms.get(&room).and_then(|r| r.speaker.poll_timeout()),
        Timer::Keyframe(room, track) => rooms
            .get(&room)
            .and_then(|r| r.publications.get(&track))
            .and_then(|p| p.keyframes.due(interval)),
    };
    deadline == Some(at)
}

/// Why a timer taken off the heap has its owner.
const TIMER_OWNER: &str = "a current timer's owner is in the SFU: `is_current` found its deadline there";

/// Why a routed datagram's peer is there.
const ROUTED: &str = "the address and ufrag routes lead to peers in the SFU: removing a peer removes its routes";
