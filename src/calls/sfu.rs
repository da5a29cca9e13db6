//! The media workers: each is a thread of its own with its own SFU (`huddle-sfu`), UDP port
//! and timer, reached through a command channel. A call is placed on the least loaded worker
//! when its first participant offers, and stays there; [`MediaServer`] routes each command to
//! the worker that owns the call. Signaling (`rtc:*`, `participant:mute`) arrives from the
//! socket handlers after the call hub confirmed the caller is in the call; what the SFU
//! reports goes back to the call's participants through Socket.IO, addressed by socket id
//! (never through a socket handle held here, so an adapter can route it to any node).
//!
//! A worker reads what its socket holds in batches (`recvmmsg`), sends each packet's fan-out
//! in as few `sendmmsg` calls as fit, and bounds the datagrams it handles per wake-up so its
//! timers and commands keep their turn. A bug met in one call's media ends that call; a
//! worker that fails outright ends its own calls, restarts, and the others never notice.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::FutureExt;
use huddle_sfu::udp::{RecvBatch, SendBatch};

use crate::realtime::Io;
use huddle_sfu::{NegotiationReply, ParticipantId, PeerKey, RoomConfig, RoomId, Sfu, SfuConfig, SfuError, SfuEvent};
use huddle_signaling::protocol::{
    ActiveSpeaker, ParticipantMuted, SfuOffer, SocketEvent, TrackPublished, TrackUnpublished,
};
use huddle_signaling::{Layer, TrackKind, TrackSource};
use mongodb::bson::oid::ObjectId;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use serde::Serialize;
use socketioxide::socket::Sid;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::calls::hub::{MediaReport, MediaReports};
use crate::config::Config;
use crate::error::{AppError, AppResult};

/// Commands waiting for a media worker before senders feel back-pressure.
const QUEUE: usize = 4096;
/// Batches of datagrams a worker reads per wake-up before it turns to its timers and
/// commands again: one busy room cannot starve the worker's other rooms.
const BATCHES_PER_WAKE: usize = 4;

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
    /// Tests only: the worker itself panics, outside any one call's handling.
    #[cfg(feature = "test-hooks")]
    Crash,
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
            #[cfg(feature = "test-hooks")]
            Self::Crash => None,
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

/// The handle the rest of the server talks to the media workers through.
#[derive(Clone, Debug)]
pub struct MediaServer {
    pool: Arc<Pool>,
}

#[derive(Debug)]
struct Pool {
    workers: Vec<WorkerHandle>,
    /// Which worker owns each call with media.
    placed: Mutex<HashMap<ObjectId, usize>>,
}

#[derive(Debug)]
struct WorkerHandle {
    tx: mpsc::Sender<Command>,
    local_addr: SocketAddr,
}

impl Pool {
    fn placed(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectId, usize>> {
        self.placed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The calls placed on `worker`, which no longer holds them.
    fn unplace_worker(&self, worker: usize) -> Vec<ObjectId> {
        let mut placed = self.placed();
        let calls: Vec<ObjectId> = placed.iter().filter(|(_, w)| **w == worker).map(|(c, _)| *c).collect();
        for call in &calls {
            placed.remove(call);
        }
        calls
    }
}

/// The workers' ends, consumed by [`start`].
pub struct MediaInbox {
    workers: Vec<WorkerInbox>,
}

struct WorkerInbox {
    index: usize,
    rx: mpsc::Receiver<Command>,
    socket: std::net::UdpSocket,
    /// Replies must name their source address (an IPv4 wildcard bind).
    pktinfo: bool,
    public_addr: SocketAddr,
}

impl std::fmt::Debug for MediaInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MediaInbox({} workers)", self.workers.len())
    }
}

impl MediaServer {
    /// Binds every worker's port (`HUDDLE_MEDIA_UDP_ADDR`'s port, then the next ones); the
    /// workers start with [`start`].
    pub fn bind(config: &Config) -> anyhow::Result<(Self, MediaInbox)> {
        let mut workers = Vec::new();
        let mut inboxes = Vec::new();
        for index in 0..config.media_workers.max(1) {
            let addr = config.media_worker_addr(index);
            let socket = std::net::UdpSocket::bind(addr)
                .map_err(|e| anyhow::anyhow!("cannot bind media worker {index}'s port {addr}: {e}"))?;
            socket.set_nonblocking(true)?;
            let buffer = huddle_sfu::udp::deepen_buffers(&socket);
            tracing::debug!(worker = index, receive_buffer = buffer, "media socket buffers");
            let local_addr = socket.local_addr()?;
            let pktinfo = huddle_sfu::udp::enable_pktinfo(&socket);
            let (tx, rx) = mpsc::channel(QUEUE);
            workers.push(WorkerHandle { tx, local_addr });
            inboxes.push(WorkerInbox {
                index,
                rx,
                socket,
                pktinfo,
                public_addr: config.media_public_addr(local_addr),
            });
        }
        let pool = Arc::new(Pool {
            workers,
            placed: Mutex::new(HashMap::new()),
        });
        Ok((Self { pool }, MediaInbox { workers: inboxes }))
    }

    /// The first worker's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.pool.workers[0].local_addr
    }

    /// Every worker's bound address, by worker.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.pool.workers.iter().map(|w| w.local_addr).collect()
    }

    /// The worker that owns `call`'s media, if it has any.
    pub fn worker_of(&self, call: ObjectId) -> Option<usize> {
        self.pool.placed().get(&call).copied()
    }

    /// The worker of `call`, placing it on the least loaded (fewest calls) when new.
    fn place(&self, call: ObjectId) -> usize {
        let mut placed = self.pool.placed();
        if let Some(worker) = placed.get(&call) {
            return *worker;
        }
        let mut load = vec![0usize; self.pool.workers.len()];
        for worker in placed.values() {
            load[*worker] += 1;
        }
        let worker = (0..load.len()).min_by_key(|w| (load[*w], *w)).unwrap_or(0);
        placed.insert(call, worker);
        worker
    }

    async fn send(&self, worker: usize, command: Command) -> AppResult<()> {
        self.pool.workers[worker]
            .tx
            .send(command)
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("media worker {worker} stopped")))
    }

    async fn ask<T>(&self, worker: usize, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> AppResult<T> {
        let (reply, answer) = oneshot::channel();
        self.send(worker, make(reply)).await?;
        answer
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("media worker {worker} dropped a request")))
    }

    /// The worker of a call that has media; a call without reads like one the caller is not in.
    fn owner(&self, call: ObjectId) -> AppResult<usize> {
        self.worker_of(call).ok_or(AppError::NotFound)
    }

    pub async fn offer(
        &self,
        call: ObjectId,
        user: ObjectId,
        socket: Sid,
        sdp: String,
        sources: Vec<(String, TrackSource)>,
    ) -> AppResult<NegotiationReply> {
        let worker = self.place(call);
        self.ask(worker, |reply| Command::Offer {
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
        let worker = self.owner(call)?;
        self.ask(worker, |reply| Command::Answer {
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
        let worker = self.owner(call)?;
        self.ask(worker, |reply| Command::Candidate {
            call,
            user,
            candidate,
            reply,
        })
        .await?
        .map_err(sfu_error)
    }

    pub async fn layer(&self, call: ObjectId, user: ObjectId, track: String, layer: Layer) -> AppResult<()> {
        let worker = self.owner(call)?;
        self.ask(worker, |reply| Command::Layer {
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
        // Nobody in the call has media yet: nobody to tell.
        let Some(worker) = self.worker_of(call) else {
            return Ok(());
        };
        self.send(
            worker,
            Command::Mute {
                call,
                user,
                source,
                muted,
            },
        )
        .await
    }

    pub async fn remove(&self, call: ObjectId, user: ObjectId) {
        if let Some(worker) = self.worker_of(call) {
            let _ = self.send(worker, Command::Remove { call, user }).await;
        }
    }

    /// The call is over: its media ends and its worker is free of it.
    pub async fn end(&self, call: ObjectId) {
        let worker = self.pool.placed().remove(&call);
        if let Some(worker) = worker {
            let _ = self.send(worker, Command::End { call }).await;
        }
    }

    /// Counters summed over every worker.
    pub async fn stats(&self) -> AppResult<MediaStats> {
        let mut total = MediaStats::default();
        for stats in self.worker_stats().await? {
            total.rooms += stats.rooms;
            total.peers += stats.peers;
            total.forwarded_packets += stats.forwarded_packets;
            total.dropped_datagrams += stats.dropped_datagrams;
            total.keyframe_requests += stats.keyframe_requests;
        }
        Ok(total)
    }

    /// Each worker's counters, by worker.
    pub async fn worker_stats(&self) -> AppResult<Vec<MediaStats>> {
        let mut all = Vec::new();
        for worker in 0..self.pool.workers.len() {
            all.push(self.ask(worker, |reply| Command::Stats { reply }).await?);
        }
        Ok(all)
    }

    /// Tests only: makes the handling of `call`'s media panic.
    #[cfg(feature = "test-hooks")]
    pub async fn inject_fault(&self, call: ObjectId) {
        if let Some(worker) = self.worker_of(call) {
            let _ = self.send(worker, Command::Fault { call }).await;
        }
    }

    /// Tests only: makes media worker `worker` itself panic.
    #[cfg(feature = "test-hooks")]
    pub async fn crash_worker(&self, worker: usize) {
        let _ = self.send(worker, Command::Crash).await;
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
    /// Datagrams due out that the socket did not take yet.
    send: SendBatch,
    /// Each client's address -> the local address it sends to, which replies leave from.
    reply_from: HashMap<SocketAddr, Ipv4Addr>,
}

/// Starts every media worker on a thread of its own (`huddle-media-<n>`), each with a
/// single-threaded runtime; they run until the server stops.
pub fn start(config: Arc<Config>, io: Io, reports: MediaReports, server: &MediaServer, inbox: MediaInbox) {
    for worker in inbox.workers {
        let (config, io, reports) = (config.clone(), io.clone(), reports.clone());
        // Weak: the workers must not keep their own command channels open.
        let pool = Arc::downgrade(&server.pool);
        let index = worker.index;
        let spawned = std::thread::Builder::new()
            .name(format!("huddle-media-{index}"))
            .spawn(
                move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime.block_on(supervise(config, io, reports, pool, worker)),
                    Err(e) => tracing::error!(worker = index, error = %e, "a media worker cannot start"),
                },
            );
        if let Err(e) = spawned {
            tracing::error!(worker = index, error = %e, "a media worker cannot start");
        }
    }
}

/// Runs one worker, restarting it with a fresh SFU when it fails outright: its calls end
/// (the hub is told), and it is counted (`huddle_media_failures_total{scope="worker"}`).
async fn supervise(config: Arc<Config>, io: Io, reports: MediaReports, pool: Weak<Pool>, inbox: WorkerInbox) {
    let WorkerInbox {
        index,
        mut rx,
        socket,
        pktinfo,
        public_addr,
    } = inbox;
    let socket = match UdpSocket::from_std(socket) {
        Ok(socket) => socket,
        Err(e) => {
            tracing::error!(worker = index, error = %e, "a media worker cannot use its socket");
            return;
        }
    };
    let port = Port {
        socket,
        pktinfo,
        public_addr,
    };
    loop {
        let served = std::panic::AssertUnwindSafe(serve(&config, &io, &reports, index, &mut rx, &port))
            .catch_unwind()
            .await;
        if served.is_ok() {
            return; // the server stopped
        }
        metrics::counter!("huddle_media_failures_total", "scope" => "worker").increment(1);
        tracing::error!(worker = index, "a media worker failed; its calls end and it restarts");
        let Some(pool) = pool.upgrade() else { return };
        for call in pool.unplace_worker(index) {
            reports.send(MediaReport::RoomFailed { call });
        }
    }
}

/// A worker's UDP port, kept across its restarts.
struct Port {
    socket: UdpSocket,
    pktinfo: bool,
    public_addr: SocketAddr,
}

/// A worker's loop, until its command channel closes.
async fn serve(
    config: &Config,
    io: &Io,
    reports: &MediaReports,
    index: usize,
    rx: &mut mpsc::Receiver<Command>,
    port: &Port,
) {
    let local_addr = port.socket.local_addr().unwrap_or(port.public_addr);
    let mut sfu_config = SfuConfig::new(local_addr);
    sfu_config.public_addr = port.public_addr;
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
            tracing::error!(worker = index, error = %e, "the SFU cannot start; calls on this worker will have no media");
            return;
        }
    };
    tracing::info!(
        component = "calls",
        worker = index,
        bound = %local_addr,
        advertised = %port.public_addr,
        "calls: media worker up"
    );
    // The socket's read buffers, reused from one read to the next.
    let mut recv = RecvBatch::default();
    let mut media = Media {
        sfu,
        outbox: Outbox::default(),
        sfu_config,
        reports: reports.clone(),
        rooms: HashMap::new(),
        send: SendBatch::default(),
        reply_from: HashMap::new(),
    };
    loop {
        let deadline = media
            .sfu
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            biased;
            command = rx.recv() => match command {
                Some(command) => {
                    #[cfg(feature = "test-hooks")]
                    if matches!(command, Command::Crash) {
                        panic!("media worker {index} crashed (injected)");
                    }
                    let call = command.call();
                    media.guarded(call, |media| media.handle(command));
                }
                None => break,
            },
            ready = port.socket.readable() => match ready {
                Ok(()) => media.receive(port, &mut recv),
                Err(e) => tracing::debug!(error = %e, "media socket"),
            },
            ready = port.socket.writable(), if !media.send.is_empty() => {
                if let Err(e) = ready {
                    tracing::debug!(error = %e, "media socket");
                }
            },
            () = tokio::time::sleep_until(deadline.into()) => {}
        }
        // Due timers run whatever woke the loop: a busy socket cannot hold them back.
        if media.sfu.poll_timeout().is_some_and(|at| at <= Instant::now()) {
            media.guarded(None, |media| media.sfu.handle_timeout(Instant::now()));
        }
        media.send_due(port);
        media.guarded(None, Media::flush_events);
        for (to, event, data) in media.outbox.take() {
            if let Err(e) = io.to(to).emit(event, &data).await {
                crate::realtime::emit_failed(event, &e);
            }
        }
    }
}

impl Media {
    /// Reads what the socket holds, a batch at a time and at most [`BATCHES_PER_WAKE`]
    /// batches, handing each datagram to the SFU and sending what it caused (a packet's
    /// fan-out) before the next.
    fn receive(&mut self, port: &Port, recv: &mut RecvBatch) {
        for _ in 0..BATCHES_PER_WAKE {
            let read = port.socket.try_io(Interest::READABLE, || recv.recv(&port.socket));
            match read {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!(error = %e, "media socket read");
                    return;
                }
            }
            for (from, to, datagram) in recv.iter() {
                if let Some(to) = to
                    && self.reply_from.get(&from) != Some(&to)
                {
                    if self.reply_from.len() > 65_536 {
                        self.reply_from.clear();
                    }
                    self.reply_from.insert(from, to);
                }
                // Refused datagrams are counted by the SFU; nothing to tell anyone.
                self.guarded(None, |media| {
                    let _ = media.sfu.handle_datagram(Instant::now(), from, datagram);
                });
                self.send_due(port);
            }
        }
    }

    /// Sends what the SFU has due, as few system calls as the kernel allows; what the socket
    /// does not take now waits for it to be writable.
    fn send_due(&mut self, port: &Port) {
        while let Some(transmit) = self.guarded(None, |media| media.sfu.poll_transmit()).flatten() {
            let source = if port.pktinfo {
                self.reply_from.get(&transmit.to).copied()
            } else {
                None
            };
            self.send.push(transmit.to, source, transmit.payload);
        }
        if self.send.is_empty() {
            return;
        }
        let send = &mut self.send;
        match port.socket.try_io(Interest::WRITABLE, || send.flush(&port.socket)) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => tracing::debug!(error = %e, "media socket write"),
        }
    }

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
            // The worker's loop fails on it before a command is handled.
            #[cfg(feature = "test-hooks")]
            Command::Crash => {}
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
