//! The media task: owns the SFU (`huddle-sfu`), its one UDP socket and its timer, and is
//! reached through a command channel. Signaling (`rtc:*`, `participant:mute`) arrives here
//! from the socket handlers after the call hub confirmed the caller is in the call; what the
//! SFU reports goes back to the call's participants through Socket.IO, addressed by socket
//! id (never through a socket handle held here, so an adapter can route it to any node).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use huddle_sfu::{NegotiationReply, ParticipantId, PeerKey, RoomConfig, RoomId, Sfu, SfuConfig, SfuError, SfuEvent};
use huddle_signaling::protocol::{
    ActiveSpeaker, ParticipantMuted, SfuOffer, SocketEvent, TrackPublished, TrackUnpublished,
};
use huddle_signaling::{Layer, TrackKind, TrackSource};
use mongodb::bson::oid::ObjectId;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use serde::Serialize;
use socketioxide::SocketIo;
use socketioxide::socket::Sid;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::calls::hub::{MediaReport, MediaReports};
use crate::config::Config;
use crate::error::{AppError, AppResult};

/// Commands waiting for the media task before senders feel back-pressure.
const QUEUE: usize = 4096;
/// Largest datagram read from the socket (MTU-sized packets and then some).
const MAX_DATAGRAM: usize = 2048;

enum Command {
    Offer {
        call: ObjectId,
        user: ObjectId,
        /// The socket the offer came on: the participant's events go to it.
        socket: Sid,
        sdp: String,
        sources: Vec<(String, TrackSource)>,
        reply: oneshot::Sender<Result<NegotiationReply, SfuError>>,
    },
    Answer {
        call: ObjectId,
        user: ObjectId,
        offer_id: u64,
        sdp: String,
        reply: oneshot::Sender<Result<NegotiationReply, SfuError>>,
    },
    Candidate {
        call: ObjectId,
        user: ObjectId,
        candidate: RTCIceCandidateInit,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Layer {
        call: ObjectId,
        user: ObjectId,
        track: String,
        layer: Layer,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Mute {
        call: ObjectId,
        user: ObjectId,
        source: TrackSource,
        muted: bool,
    },
    /// The user left the call (or was dropped by the hub).
    Remove {
        call: ObjectId,
        user: ObjectId,
    },
    /// The call is over: every connection closes.
    End {
        call: ObjectId,
    },
    Stats {
        reply: oneshot::Sender<MediaStats>,
    },
    /// Tests only: handling this call's media panics, as a bug would.
    #[cfg(feature = "test-hooks")]
    Fault {
        call: ObjectId,
    },
}

impl Command {
    /// The call a command is about, if it is about one.
    fn call(&self) -> Option<ObjectId> {
        match self {
            Self::Offer { call, .. }
            | Self::Answer { call, .. }
            | Self::Candidate { call, .. }
            | Self::Layer { call, .. }
            | Self::Mute { call, .. }
            | Self::Remove { call, .. }
            | Self::End { call } => Some(*call),
            #[cfg(feature = "test-hooks")]
            Self::Fault { call } => Some(*call),
            Self::Stats { .. } => None,
        }
    }
}

/// Counters for tests and metrics.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaStats {
    pub rooms: usize,
    pub peers: usize,
    pub forwarded_packets: u64,
    pub dropped_datagrams: u64,
    pub keyframe_requests: u64,
}

/// The handle the rest of the server talks to the media task through.
#[derive(Clone, Debug)]
pub struct MediaServer {
    tx: mpsc::Sender<Command>,
    local_addr: SocketAddr,
}

/// The media task's end, consumed by [`run`].
pub struct MediaInbox {
    rx: mpsc::Receiver<Command>,
    socket: super::udp::MediaSocket,
    public_addr: SocketAddr,
}

impl std::fmt::Debug for MediaInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaInbox")
    }
}

impl MediaServer {
    /// Binds the media port; the task starts with [`run`].
    pub async fn bind(config: &Config) -> anyhow::Result<(Self, MediaInbox)> {
        let socket = UdpSocket::bind(config.media_udp_addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind the media port {}: {e}", config.media_udp_addr))?;
        let local_addr = socket.local_addr()?;
        let public_addr = config.media_public_addr(local_addr);
        let (tx, rx) = mpsc::channel(QUEUE);
        Ok((
            Self { tx, local_addr },
            MediaInbox {
                rx,
                socket: super::udp::MediaSocket::new(socket),
                public_addr,
            },
        ))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    async fn send(&self, command: Command) -> AppResult<()> {
        self.tx
            .send(command)
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("media task stopped")))
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> AppResult<T> {
        let (reply, answer) = oneshot::channel();
        self.send(make(reply)).await?;
        answer
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("media task dropped a request")))
    }

    pub async fn offer(
        &self,
        call: ObjectId,
        user: ObjectId,
        socket: Sid,
        sdp: String,
        sources: Vec<(String, TrackSource)>,
    ) -> AppResult<NegotiationReply> {
        self.ask(|reply| Command::Offer {
            call,
            user,
            socket,
            sdp,
            sources,
            reply,
        })
        .await?
        .map_err(sfu_error)
    }

    pub async fn answer(
        &self,
        call: ObjectId,
        user: ObjectId,
        offer_id: u64,
        sdp: String,
    ) -> AppResult<NegotiationReply> {
        self.ask(|reply| Command::Answer {
            call,
            user,
            offer_id,
            sdp,
            reply,
        })
        .await?
        .map_err(sfu_error)
    }

    pub async fn candidate(&self, call: ObjectId, user: ObjectId, candidate: RTCIceCandidateInit) -> AppResult<()> {
        self.ask(|reply| Command::Candidate {
            call,
            user,
            candidate,
            reply,
        })
        .await?
        .map_err(sfu_error)
    }

    pub async fn layer(&self, call: ObjectId, user: ObjectId, track: String, layer: Layer) -> AppResult<()> {
        self.ask(|reply| Command::Layer {
            call,
            user,
            track,
            layer,
            reply,
        })
        .await?
        .map_err(sfu_error)
    }

    pub async fn mute(&self, call: ObjectId, user: ObjectId, source: TrackSource, muted: bool) -> AppResult<()> {
        self.send(Command::Mute {
            call,
            user,
            source,
            muted,
        })
        .await
    }

    pub async fn remove(&self, call: ObjectId, user: ObjectId) {
        let _ = self.send(Command::Remove { call, user }).await;
    }

    pub async fn end(&self, call: ObjectId) {
        let _ = self.send(Command::End { call }).await;
    }

    pub async fn stats(&self) -> AppResult<MediaStats> {
        self.ask(|reply| Command::Stats { reply }).await
    }

    /// Tests only: makes the handling of `call`'s media panic.
    #[cfg(feature = "test-hooks")]
    pub async fn inject_fault(&self, call: ObjectId) {
        let _ = self.send(Command::Fault { call }).await;
    }
}

/// SFU refusals as client errors; an unknown participant reads like a call one is not in.
fn sfu_error(e: SfuError) -> AppError {
    match e {
        SfuError::UnknownParticipant(_) => AppError::NotFound,
        SfuError::Setup(message) => AppError::Internal(anyhow::anyhow!("media setup: {message}")),
        other => AppError::Rejected {
            code: other.code(),
            message: other.to_string(),
        },
    }
}

struct Participant {
    /// The socket that offered last, by id: emits go through Socket.IO's rooms, never through
    /// a handle held here.
    socket: Sid,
    muted: HashMap<TrackSource, bool>,
}

/// One call's participants as the media task knows them (the SFU's `Room` is its own
/// bookkeeping of the same people; Socket.IO's rooms are where events go).
struct CallPeers {
    participants: HashMap<ParticipantId, Participant>,
}

/// The SFU's room of a call: the call's id itself (the SFU's ids are the caller's).
fn room_of(call: ObjectId) -> RoomId {
    RoomId(wide(call))
}

/// The SFU's participant for a user: the user's id itself.
fn participant_of(user: ObjectId) -> ParticipantId {
    ParticipantId(wide(user))
}

fn wide(id: ObjectId) -> u128 {
    let mut bytes = [0u8; 16];
    bytes[4..].copy_from_slice(&id.bytes());
    u128::from_be_bytes(bytes)
}

fn narrow(n: u128) -> ObjectId {
    let bytes: [u8; 12] = n.to_be_bytes()[4..].try_into().expect("12 of 16 bytes");
    ObjectId::from_bytes(bytes)
}

/// Emits waiting to go out, each to one socket by its id. Handling a command or a datagram
/// fills it; the task's loop sends it before it waits again.
#[derive(Default)]
struct Outbox(std::cell::RefCell<Vec<(Sid, &'static str, serde_json::Value)>>);

impl Outbox {
    fn push<E: SocketEvent + Serialize>(&self, to: Sid, event: &E) {
        match serde_json::to_value(event) {
            Ok(value) => self.0.borrow_mut().push((to, E::EVENT, value)),
            Err(e) => tracing::error!(event = E::EVENT, error = %e, "media event not serializable"),
        }
    }

    fn take(&self) -> Vec<(Sid, &'static str, serde_json::Value)> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
}

struct Media {
    sfu: Sfu,
    outbox: Outbox,
    /// What a fresh `Sfu` is built from, when a fault leaves the old one unusable.
    sfu_config: SfuConfig,
    reports: MediaReports,
    rooms: HashMap<RoomId, CallPeers>,
}

/// Runs the media task until the server stops.
pub async fn run(config: std::sync::Arc<Config>, io: SocketIo, reports: MediaReports, inbox: MediaInbox) {
    let MediaInbox {
        mut rx,
        socket,
        public_addr,
    } = inbox;
    let local_addr = socket.local_addr().unwrap_or(public_addr);
    let mut sfu_config = SfuConfig::new(local_addr);
    sfu_config.public_addr = public_addr;
    sfu_config.room = RoomConfig {
        max_participants: config.call_max_participants,
        max_tracks_per_participant: config.call_max_tracks_per_participant,
    };
    let timeout = Duration::from_secs(config.call_media_timeout_secs);
    sfu_config.ice_failed_timeout = timeout;
    sfu_config.ice_disconnected_timeout = (timeout / 3).max(Duration::from_secs(1));
    sfu_config.ice_keepalive_interval = (timeout / 6).clamp(Duration::from_millis(500), Duration::from_secs(2));
    let sfu = match Sfu::new(sfu_config.clone()) {
        Ok(sfu) => sfu,
        Err(e) => {
            tracing::error!(error = %e, "the SFU cannot start; calls will have no media");
            return;
        }
    };
    tracing::info!(component = "calls", bound = %local_addr, advertised = %public_addr, "calls: SFU media on one UDP port");
    let mut media = Media {
        sfu,
        outbox: Outbox::default(),
        sfu_config,
        reports,
        rooms: HashMap::new(),
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // Each client's address -> the local address it sends to, which replies leave from.
    let mut reply_from: HashMap<SocketAddr, std::net::Ipv4Addr> = HashMap::new();
    loop {
        let deadline = media
            .sfu
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            command = rx.recv() => match command {
                Some(command) => {
                    let call = command.call();
                    media.guarded(call, |media| media.handle(command));
                }
                None => break,
            },
            received = socket.recv(&mut buf) => match received {
                Ok((len, from, to)) => {
                    if let Some(to) = to
                        && reply_from.get(&from) != Some(&to)
                    {
                        if reply_from.len() > 65_536 {
                            reply_from.clear();
                        }
                        reply_from.insert(from, to);
                    }
                    // Refused datagrams are counted by the SFU; nothing to tell anyone.
                    let datagram = &buf[..len];
                    media.guarded(None, |media| {
                        let _ = media.sfu.handle_datagram(Instant::now(), from, datagram);
                    });
                }
                Err(e) => tracing::debug!(error = %e, "media socket read"),
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                media.guarded(None, |media| media.sfu.handle_timeout(Instant::now()));
            }
        }
        while let Some(transmit) = media.guarded(None, |media| media.sfu.poll_transmit()).flatten() {
            let source = reply_from.get(&transmit.to).copied();
            if let Err(e) = socket.send(&transmit.payload, transmit.to, source).await {
                tracing::debug!(error = %e, to = %transmit.to, "media socket write");
            }
        }
        media.guarded(None, Media::flush_events);
        for (to, event, data) in media.outbox.take() {
            if let Err(e) = io.to(to).emit(event, &data).await {
                crate::realtime::emit_failed(event, &e);
            }
        }
    }
}

impl Media {
    /// Runs `work`, catching a panic in it: a bug met while handling one call's media ends
    /// that call alone (the room it was about, or the room the SFU was working on), and the
    /// others keep their media. When the failure cannot be pinned to one room, or ending that
    /// room fails too, the SFU is rebuilt and every call on it ends. Each failure is logged
    /// and counted (`huddle_media_failures_total`).
    fn guarded<T>(&mut self, call: Option<ObjectId>, work: impl FnOnce(&mut Self) -> T) -> Option<T> {
        let failure = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(self))) {
            Ok(done) => return Some(done),
            Err(failure) => failure,
        };
        let what = failure
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| failure.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        let room = call
            .map(room_of)
            .filter(|room| self.rooms.contains_key(room))
            .or_else(|| self.sfu.busy().map(|key| key.room));
        match room {
            Some(room) if self.end_failed_room(room) => {
                metrics::counter!("huddle_media_failures_total", "scope" => "call").increment(1);
                tracing::error!(failure = %what, "a call's media failed; that call ends, the others go on");
            }
            _ => {
                metrics::counter!("huddle_media_failures_total", "scope" => "sfu").increment(1);
                tracing::error!(failure = %what, "the SFU failed; it restarts and every call on it ends");
                self.restart();
            }
        }
        None
    }

    /// Drops a room whose handling failed and tells the hub; false when that fails as well.
    fn end_failed_room(&mut self, room: RoomId) -> bool {
        let Some(call_peers) = self.rooms.remove(&room) else {
            return false;
        };
        self.reports.send(MediaReport::RoomFailed { call: narrow(room.0) });
        let now = Instant::now();
        let sfu = &mut self.sfu;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for participant in call_peers.participants.keys() {
                let _ = sfu.leave(
                    now,
                    PeerKey {
                        room,
                        participant: *participant,
                    },
                );
            }
        }))
        .is_ok()
    }

    /// A fresh SFU: every call on the old one ends.
    fn restart(&mut self) {
        for room in std::mem::take(&mut self.rooms).into_keys() {
            self.reports.send(MediaReport::RoomFailed { call: narrow(room.0) });
        }
        match Sfu::new(self.sfu_config.clone()) {
            Ok(sfu) => self.sfu = sfu,
            Err(e) => tracing::error!(error = %e, "the SFU cannot restart"),
        }
    }

    /// The peer of `user` in `call`, if they are in its media room.
    fn key(&self, call: ObjectId, user: ObjectId) -> Option<PeerKey> {
        let key = PeerKey {
            room: room_of(call),
            participant: participant_of(user),
        };
        self.rooms
            .get(&key.room)?
            .participants
            .contains_key(&key.participant)
            .then_some(key)
    }

    /// `key`, for requests: someone not (yet) in the media room is an unknown participant.
    fn participant(&self, call: ObjectId, user: ObjectId) -> Result<PeerKey, SfuError> {
        self.key(call, user)
            .ok_or(SfuError::UnknownParticipant(participant_of(user)))
    }

    fn handle(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Offer {
                call,
                user,
                socket,
                sdp,
                sources,
                reply,
            } => {
                let result = self.offer(now, call, user, socket, sdp, &sources);
                let _ = reply.send(result);
            }
            Command::Answer {
                call,
                user,
                offer_id,
                sdp,
                reply,
            } => {
                let result = self
                    .participant(call, user)
                    .and_then(|key| self.sfu.handle_answer(now, key, offer_id, sdp));
                let _ = reply.send(result);
            }
            Command::Candidate {
                call,
                user,
                candidate,
                reply,
            } => {
                let result = self
                    .participant(call, user)
                    .and_then(|key| self.sfu.add_candidate(key, candidate));
                let _ = reply.send(result);
            }
            Command::Layer {
                call,
                user,
                track,
                layer,
                reply,
            } => {
                let result = self.participant(call, user).and_then(|key| {
                    let track = track.parse()?;
                    self.sfu.set_layer(now, key, track, layer)
                });
                let _ = reply.send(result);
            }
            Command::Mute {
                call,
                user,
                source,
                muted,
            } => {
                let Some(key) = self.key(call, user) else { return };
                if let Some(room) = self.rooms.get_mut(&key.room)
                    && let Some(p) = room.participants.get_mut(&key.participant)
                {
                    p.muted.insert(source, muted);
                }
                let event = ParticipantMuted {
                    call_id: call.to_hex(),
                    user_id: user.to_hex(),
                    source,
                    muted,
                };
                self.to_room(key.room, Some(key.participant), &event);
            }
            Command::Remove { call, user } => {
                if let Some(key) = self.key(call, user) {
                    self.remove(now, key);
                }
            }
            Command::End { call } => {
                let room = room_of(call);
                if self.rooms.contains_key(&room) {
                    let participants: Vec<ParticipantId> = self
                        .rooms
                        .get(&room)
                        .map(|r| r.participants.keys().copied().collect())
                        .unwrap_or_default();
                    for participant in participants {
                        self.remove(now, PeerKey { room, participant });
                    }
                }
            }
            #[cfg(feature = "test-hooks")]
            Command::Fault { call } => panic!("fault injected into call {call}'s media"),
            Command::Stats { reply } => {
                let stats = self.sfu.stats();
                let _ = reply.send(MediaStats {
                    rooms: self.sfu.room_count(),
                    peers: self.sfu.peer_count(),
                    forwarded_packets: stats.forwarded_packets,
                    dropped_datagrams: stats.dropped_datagrams,
                    keyframe_requests: stats.keyframe_requests,
                });
            }
        }
    }

    fn offer(
        &mut self,
        now: Instant,
        call: ObjectId,
        user: ObjectId,
        socket: Sid,
        sdp: String,
        sources: &[(String, TrackSource)],
    ) -> Result<NegotiationReply, SfuError> {
        let key = match self.key(call, user) {
            Some(key) => {
                // The same user from another socket (a reconnect, another tab) takes over.
                if let Some(p) = self
                    .rooms
                    .get_mut(&key.room)
                    .and_then(|r| r.participants.get_mut(&key.participant))
                {
                    p.socket = socket;
                }
                key
            }
            None => self.join(now, call, user, socket)?,
        };
        self.sfu.handle_offer(now, key, sdp, sources)
    }

    fn join(&mut self, now: Instant, call: ObjectId, user: ObjectId, socket: Sid) -> Result<PeerKey, SfuError> {
        let key = PeerKey {
            room: room_of(call),
            participant: participant_of(user),
        };
        let room = key.room;
        let call_peers = self.rooms.entry(room).or_insert_with(|| CallPeers {
            participants: HashMap::new(),
        });
        if let Err(e) = self.sfu.join(now, key) {
            if call_peers.participants.is_empty() {
                self.rooms.remove(&room);
            }
            return Err(e);
        }
        // Tell the newcomer who is muted; the tracks already there come from the SFU, one
        // `track:published` per track it now receives.
        for (id, p) in &call_peers.participants {
            for (source, muted) in &p.muted {
                let event = ParticipantMuted {
                    call_id: call.to_hex(),
                    user_id: narrow(id.0).to_hex(),
                    source: *source,
                    muted: *muted,
                };
                self.outbox.push(socket, &event);
            }
        }
        call_peers.participants.insert(
            key.participant,
            Participant {
                socket,
                muted: HashMap::new(),
            },
        );
        Ok(key)
    }

    fn remove(&mut self, now: Instant, key: PeerKey) {
        if let Err(e) = self.sfu.leave(now, key) {
            tracing::debug!(error = %e, "media leave");
        }
        self.flush_events();
        if let Some(room) = self.rooms.get_mut(&key.room) {
            room.participants.remove(&key.participant);
            if room.participants.is_empty() {
                self.rooms.remove(&key.room);
            }
        }
    }

    /// The call and user of a peer still in its call's media room.
    fn user_of(&self, key: PeerKey) -> Option<(ObjectId, ObjectId)> {
        let room = self.rooms.get(&key.room)?;
        room.participants
            .contains_key(&key.participant)
            .then(|| (narrow(key.room.0), narrow(key.participant.0)))
    }

    fn to_room<E: SocketEvent + Serialize>(&self, room: RoomId, except: Option<ParticipantId>, data: &E) {
        let Some(room) = self.rooms.get(&room) else { return };
        for (id, p) in &room.participants {
            if Some(*id) != except {
                self.outbox.push(p.socket, data);
            }
        }
    }

    fn flush_events(&mut self) {
        while let Some(event) = self.sfu.poll_event() {
            match event {
                SfuEvent::Offer { peer, offer_id, sdp } => {
                    let Some((call, _)) = self.user_of(peer) else { continue };
                    let Some(p) = self
                        .rooms
                        .get(&peer.room)
                        .and_then(|r| r.participants.get(&peer.participant))
                    else {
                        continue;
                    };
                    let offer = SfuOffer {
                        call_id: call.to_hex(),
                        offer_id,
                        sdp,
                    };
                    self.outbox.push(p.socket, &offer);
                }
                SfuEvent::Connected { peer } => {
                    if let Some((call, user)) = self.user_of(peer) {
                        tracing::debug!(call = %call, user = %user, "media connected");
                    }
                }
                SfuEvent::TrackPublished {
                    room,
                    to,
                    owner,
                    track_id,
                    stream_id,
                    kind,
                    source,
                    ..
                } => {
                    let Some((call, user)) = self.user_of(PeerKey {
                        room,
                        participant: owner,
                    }) else {
                        continue;
                    };
                    let Some(subscriber) = self.rooms.get(&room).and_then(|r| r.participants.get(&to)) else {
                        continue;
                    };
                    let event = TrackPublished {
                        call_id: call.to_hex(),
                        user_id: user.to_hex(),
                        track_id,
                        stream_id,
                        kind: wire_kind(kind),
                        source,
                    };
                    self.outbox.push(subscriber.socket, &event);
                }
                SfuEvent::TrackUnpublished {
                    room,
                    owner,
                    track,
                    kind,
                    source,
                } => {
                    let Some((call, user)) = self.user_of(PeerKey {
                        room,
                        participant: owner,
                    }) else {
                        continue;
                    };
                    let event = TrackUnpublished {
                        call_id: call.to_hex(),
                        user_id: user.to_hex(),
                        track_id: huddle_sfu::track_label(track),
                        kind: wire_kind(kind),
                        source,
                    };
                    self.to_room(room, Some(owner), &event);
                }
                SfuEvent::PeerFailed { peer } => {
                    let Some((call, user)) = self.user_of(peer) else {
                        continue;
                    };
                    tracing::info!(call = %call, user = %user, "media connection lost; leaving the call");
                    if let Some(room) = self.rooms.get_mut(&peer.room) {
                        room.participants.remove(&peer.participant);
                    }
                    // Reported, never awaited: the hub may be waiting on this task.
                    self.reports.send(MediaReport::PeerFailed { call, user });
                }
                SfuEvent::Speaker { room, participant } => {
                    if !self.rooms.contains_key(&room) {
                        continue;
                    }
                    let call = narrow(room.0);
                    let user = participant.and_then(|p| self.user_of(PeerKey { room, participant: p }).map(|(_, u)| u));
                    let event = ActiveSpeaker {
                        call_id: call.to_hex(),
                        user_id: user.map(|u| u.to_hex()),
                    };
                    self.to_room(room, None, &event);
                }
                SfuEvent::FirstKeyframe { after_answer, .. } => {
                    // Set-up time per subscription: the subscriber's answer to its first
                    // picture (a keyframe forwarded).
                    metrics::histogram!("huddle_call_first_keyframe_seconds").record(after_answer.as_secs_f64());
                }
            }
        }
    }
}

fn wire_kind(kind: huddle_sfu::TrackKind) -> TrackKind {
    match kind {
        huddle_sfu::TrackKind::Audio => TrackKind::Audio,
        huddle_sfu::TrackKind::Video | huddle_sfu::TrackKind::Screen => TrackKind::Video,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sfus_ids_are_the_calls_and_users_own() {
        for _ in 0..100 {
            let (call, user) = (ObjectId::new(), ObjectId::new());
            assert_eq!(narrow(room_of(call).0), call);
            assert_eq!(narrow(participant_of(user).0), user);
        }
        let (a, b) = (ObjectId::new(), ObjectId::new());
        assert_ne!(participant_of(a), participant_of(b));
    }
}
