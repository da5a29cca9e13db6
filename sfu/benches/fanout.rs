//! Fan-out benchmark: rooms of audio publishers x subscribers on loopback UDP, each room on
//! one of N media workers (a thread with its own SFU and socket, as in the server), beside
//! the machine's raw UDP ceiling measured in the same run.
//!
//! `cargo bench -p huddle-sfu --bench fanout`. Settings (environment):
//! - `FANOUT_WORKERS` (1), `FANOUT_ROOMS` (1): room `r` is on worker `r % workers`;
//! - `FANOUT_PUBLISHERS` (10), `FANOUT_SUBSCRIBERS` (100): per room;
//! - `FANOUT_SECONDS` (5); `FANOUT_SEED` (1: the publishers' phases in the frame);
//! - `FANOUT_SRTP` (`aes-gcm`; `aes-cm`: clients that take only AES-CM with HMAC-SHA1);
//! - `FANOUT_JSON` (the workspace's `target/fanout.json`): where the figures go;
//! - `FANOUT_REPORT_SECONDS` (5): how often each subscriber sends its receiver reports, as
//!   a browser reports audio (libwebrtc: every 5 s; `rtc`'s 1 s, one packet per stream,
//!   would make them most of the SFU's input);
//! - `FANOUT_CLIENT_NICE` (10): the client threads' nice value. They stand for machines of
//!   their own, and on a small machine they would otherwise take turns with the workers on
//!   the same cores; 0 lets them compete as equals.
//!
//! A worker's loop is the server's: read what the socket holds (`recvmmsg`, a batch), hand
//! each datagram to the SFU, run due timers, send everything due (`sendmmsg`), wait.
//!
//! Prints and saves: per-worker CPU (from `/proc/self/task`), packets forwarded per
//! CPU-second and CPU per packet, loss, added forwarding latency (a datagram's arrival to
//! the send of its copies) p50/p99/p999, end-to-end latency, the SFU's heap per participant
//! (bytes allocated by SFU calls and still held after set-up) and the process's RSS, and
//! the raw ceilings: one thread sending 100-byte datagrams to another, `send_to`/`recv_from`
//! and `sendmmsg`/`recvmmsg`.
// A real-time load program: it drives the SFU from real sockets and the real clock.
#![allow(clippy::disallowed_methods)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use huddle_sfu::client::{ClientConfig, ClientPeer, MediaKind};
use huddle_sfu::udp::{RecvBatch, SendBatch, deepen_buffers, wait_readable};
use huddle_sfu::{ParticipantId, PeerKey, RoomConfig, RoomId, Sfu, SfuConfig, SfuEvent};

/// One Opus frame every 20 ms.
const FRAME: Duration = Duration::from_millis(20);
const PAYLOAD_BYTES: usize = 100;
/// Marks a measured packet (setup primers carry a different first byte).
const MEASURED: u8 = 0xAB;

// ---- the SFU's heap: bytes allocated while a thread runs SFU code, less those it frees ----

struct Counting;

static SFU_HEAP: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static IN_SFU: Cell<bool> = const { Cell::new(false) };
}

fn tally(delta: isize) {
    if IN_SFU.try_with(Cell::get).unwrap_or(false) {
        SFU_HEAP.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed to the system allocator unchanged; only a counter moves.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        tally(layout.size() as isize);
        // SAFETY: the caller's contract is forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        tally(-(layout.size() as isize));
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        tally(layout.size() as isize);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        tally(new_size as isize - layout.size() as isize);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` as SFU code: what it allocates and frees counts as the SFU's.
fn in_sfu<T>(f: impl FnOnce() -> T) -> T {
    IN_SFU.with(|c| c.set(true));
    let out = f();
    IN_SFU.with(|c| c.set(false));
    out
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Kilobytes of resident memory of this process.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU time of each thread of this process by name, from `/proc/self/task`: user, system.
fn threads_cpu() -> HashMap<String, [Duration; 2]> {
    let tick = 100.0; // USER_HZ on Linux
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let cpu: &mut [Duration; 2] = out.entry(name).or_default();
        cpu[0] += Duration::from_secs_f64(ticks(11) / tick);
        cpu[1] += Duration::from_secs_f64(ticks(12) / tick);
    }
    out
}

/// The subscribers' receiver report interval (`FANOUT_REPORT_SECONDS`).
fn report_interval() -> Duration {
    Duration::from_secs(env_or("FANOUT_REPORT_SECONDS", 5).max(1) as u64)
}

/// Gives the calling (client) thread nice value `nice`, so that a worker with work to do runs
/// first, as it would on a machine of its own.
fn yield_to_workers(nice: i32) {
    // SAFETY: plain system calls on the calling thread, with no pointers.
    let tid = unsafe { nix::libc::gettid() };
    if unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid as nix::libc::id_t, nice) } != 0 {
        eprintln!("client thread nice {nice}: {}", std::io::Error::last_os_error());
    }
}

struct Client {
    peer: ClientPeer,
    udp: UdpSocket,
}

impl Client {
    /// An audio-only client. Subscribers never send on their track: it only gives their offer
    /// an m-line, and is never published.
    fn new(name: String) -> Self {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_nonblocking(true).unwrap();
        // The clients share the machine with the SFU and read in turns: a deep buffer keeps a
        // client that waits for its turn from losing what the SFU sent it meanwhile.
        deepen_buffers(&udp);
        let mut config = ClientConfig::new(udp.local_addr().unwrap(), name);
        config.video = false;
        config.aes_cm_srtp_only = std::env::var("FANOUT_SRTP").is_ok_and(|v| v == "aes-cm");
        config.report_interval = report_interval();
        Self {
            peer: ClientPeer::new(Instant::now(), config).unwrap(),
            udp,
        }
    }

    /// Reads what is waiting, runs timers, writes what is due. Returns datagrams read.
    fn step(&mut self, buf: &mut [u8]) -> usize {
        let local = self.udp.local_addr().unwrap();
        let mut read = 0;
        while let Ok((n, from)) = self.udp.recv_from(buf) {
            self.peer.handle_datagram(Instant::now(), from, local, &buf[..n]);
            read += 1;
        }
        let now = Instant::now();
        if self.peer.poll_timeout().is_some_and(|at| at <= now) {
            self.peer.handle_timeout(now);
        }
        while let Some((_, to, payload)) = self.peer.poll_transmit() {
            let _ = self.udp.send_to(&payload, to);
        }
        read
    }

    fn measured(&self) -> usize {
        self.peer
            .remote_tracks()
            .values()
            .flat_map(|t| t.payloads.iter())
            .filter(|p| p.first() == Some(&MEASURED))
            .count()
    }
}

/// A media worker: its own SFU on its own socket.
struct Worker {
    sfu: Sfu,
    udp: UdpSocket,
    send: SendBatch,
}

impl Worker {
    fn new(max_participants: usize) -> Self {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_nonblocking(true).unwrap();
        // As the server's workers do.
        deepen_buffers(&udp);
        let mut config = SfuConfig::new(udp.local_addr().unwrap());
        config.room = RoomConfig {
            max_participants,
            max_tracks_per_participant: 1,
        };
        Self {
            sfu: Sfu::new(config).unwrap(),
            udp,
            send: SendBatch::default(),
        }
    }

    /// One turn of the loop: a batch read; each datagram handed to the SFU and what it
    /// caused sent at once (a fan-out in as few `sendmmsg` calls as fit), its added latency
    /// (the batch's read to the send of its last copy) given to `added`; then due timers run
    /// and their output sent.
    /// SFU events are left for the caller. Returns the datagrams read.
    /// (`recv`'s buffers are the thread's: they cannot move between threads.)
    fn turn(&mut self, recv: &mut RecvBatch, mut added: impl FnMut(Duration)) -> usize {
        let read = recv.recv(&self.udp).unwrap_or(0);
        // Read together: a datagram's latency includes its wait behind those before it.
        let arrived = Instant::now();
        for (from, _, datagram) in recv.iter() {
            let _ = self.sfu.handle_datagram(Instant::now(), from, datagram);
            self.send_due();
            added(arrived.elapsed());
        }
        let now = Instant::now();
        if self.sfu.poll_timeout().is_some_and(|at| at <= now) {
            self.sfu.handle_timeout(now);
        }
        self.send_due();
        read
    }

    fn send_due(&mut self) {
        while let Some(t) = self.sfu.poll_transmit() {
            self.send.push(t.to, None, t.payload);
        }
        let _ = self.send.flush(&self.udp);
    }

    /// Waits for a datagram, the next timer, or 1 ms, whichever comes first.
    fn wait(&mut self) {
        let now = Instant::now();
        let until = self
            .sfu
            .poll_timeout()
            .map_or(Duration::from_millis(1), |at| at.saturating_duration_since(now))
            .min(Duration::from_millis(1));
        if self.send.is_empty() {
            let _ = wait_readable(&self.udp, until);
        }
    }
}

fn key(room: usize, participant: usize) -> PeerKey {
    PeerKey {
        room: RoomId(room as u128 + 1),
        participant: ParticipantId(participant as u128),
    }
}

/// The SFU's answer or offer, handed to the client as its own copy; the SFU's string is
/// dropped as SFU code (it was allocated as SFU code).
fn handed_over(sdp: String) -> String {
    let copy = sdp.clone();
    in_sfu(|| drop(sdp));
    copy
}

fn negotiate(worker: &mut Worker, client: &mut Client, key: PeerKey) {
    let now = Instant::now();
    in_sfu(|| worker.sfu.join(now, key)).unwrap();
    let offer = client.peer.create_offer(now).unwrap();
    let reply = in_sfu(|| worker.sfu.handle_offer(now, key, offer, &[])).unwrap();
    let answer = handed_over(reply.answer.clone().unwrap());
    let offer = reply.offer.clone().map(|(id, sdp)| (id, handed_over(sdp)));
    in_sfu(|| drop(reply));
    client.peer.apply_answer(now, answer).unwrap();
    follow(worker, client, key, offer);
}

fn follow(worker: &mut Worker, client: &mut Client, key: PeerKey, mut offer: Option<(u64, String)>) {
    while let Some((id, sdp)) = offer.take() {
        if let Some(answer) = client.peer.apply_offer(Instant::now(), sdp).unwrap() {
            let reply = in_sfu(|| worker.sfu.handle_answer(Instant::now(), key, id, answer)).unwrap();
            offer = reply.offer.clone().map(|(id, sdp)| (id, handed_over(sdp)));
            in_sfu(|| drop(reply));
        }
    }
}

/// Answers the SFU's offers: a worker's events are for every room on it, and each offer goes
/// to its own room's subscriber.
fn answer_offers(worker: &mut Worker, rooms: &mut [Room]) {
    while let Some(event) = in_sfu(|| worker.sfu.poll_event()) {
        let SfuEvent::Offer { peer, offer_id, sdp } = event else {
            in_sfu(|| drop(event));
            continue;
        };
        let sdp = handed_over(sdp);
        let room = &mut rooms[(peer.room.0 - 1) as usize];
        if let Some(i) = room.sub_keys.iter().position(|k| *k == peer) {
            follow(worker, &mut room.subs[i], peer, Some((offer_id, sdp)));
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Room {
    pubs: Vec<Client>,
    subs: Vec<Client>,
    sub_keys: Vec<PeerKey>,
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let workers_n = env_or("FANOUT_WORKERS", 1).max(1);
    let rooms_n = env_or("FANOUT_ROOMS", 1).max(1);
    let publishers = env_or("FANOUT_PUBLISHERS", 10);
    let subscribers = env_or("FANOUT_SUBSCRIBERS", 100);
    let seconds = env_or("FANOUT_SECONDS", 5) as u64;
    let seed = env_or("FANOUT_SEED", 1) as u64;
    let client_nice = env_or("FANOUT_CLIENT_NICE", 10) as i32;
    let json_path = std::env::var("FANOUT_JSON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/fanout.json").into());
    println!(
        "fan-out: {rooms_n} room(s) of {publishers} audio publishers x {subscribers} subscribers on \
         {workers_n} worker(s), {seconds} s, loopback UDP"
    );
    assert!(
        publishers + subscribers <= huddle_sfu::MAX_PARTICIPANTS,
        "one room holds at most {} participants",
        huddle_sfu::MAX_PARTICIPANTS
    );

    let rss_before = rss_kib();
    let heap_before = SFU_HEAP.load(Ordering::Relaxed);
    let mut workers: Vec<Worker> = (0..workers_n)
        .map(|_| in_sfu(|| Worker::new(publishers + subscribers)))
        .collect();
    let mut rooms: Vec<Room> = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut recv = RecvBatch::default();
    for r in 0..rooms_n {
        let w = r % workers_n;
        rooms.push(Room {
            pubs: Vec::new(),
            subs: Vec::new(),
            sub_keys: (0..subscribers).map(|s| key(r, 1000 + s)).collect(),
        });
        for p in 0..publishers {
            let mut client = Client::new(format!("r{r}p{p}"));
            negotiate(&mut workers[w], &mut client, key(r, p));
            rooms[r].pubs.push(client);
        }
        // Join in batches, each connected before the next, as people trickle into a real
        // call (a hundred handshakes at once would overflow the loopback socket buffers).
        for b in 0..subscribers.div_ceil(10) {
            let first = b * 10;
            for k in first..((b + 1) * 10).min(subscribers) {
                let mut client = Client::new(format!("r{r}s{k}"));
                negotiate(&mut workers[w], &mut client, rooms[r].sub_keys[k]);
                rooms[r].subs.push(client);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while !rooms[r].subs[first..].iter().all(|c| c.peer.is_connected()) {
                assert!(
                    Instant::now() < deadline,
                    "room {r}: subscribers {first}.. did not connect"
                );
                in_sfu(|| workers[w].turn(&mut recv, |_| {}));
                let room = &mut rooms[r];
                for c in room.pubs.iter_mut().chain(room.subs.iter_mut()) {
                    c.step(&mut buf);
                }
                answer_offers(&mut workers[w], &mut rooms);
                thread::sleep(Duration::from_micros(200));
            }
        }
    }
    // Everyone connected: publishers prime their tracks until every subscriber has them all.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_primer = Instant::now() - FRAME;
    loop {
        for w in &mut workers {
            in_sfu(|| w.turn(&mut recv, |_| {}));
        }
        for room in &mut rooms {
            for c in room.pubs.iter_mut().chain(room.subs.iter_mut()) {
                c.step(&mut buf);
            }
        }
        for worker in &mut workers {
            answer_offers(worker, &mut rooms);
        }
        if last_primer.elapsed() >= FRAME {
            last_primer = Instant::now();
            for c in rooms.iter_mut().flat_map(|r| r.pubs.iter_mut()) {
                c.peer
                    .send(Instant::now(), MediaKind::Audio, Bytes::from_static(b"primer"))
                    .unwrap();
            }
        }
        let ready = rooms
            .iter()
            .all(|r| r.subs.iter().all(|c| c.peer.remote_tracks().len() == publishers));
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "set-up did not complete: not every subscriber has every track"
        );
        thread::sleep(Duration::from_micros(200));
    }
    // Drain the primers' leftovers before measuring.
    for _ in 0..50 {
        for w in &mut workers {
            in_sfu(|| w.turn(&mut recv, |_| {}));
            in_sfu(|| while w.sfu.poll_event().is_some() {});
        }
        for c in rooms
            .iter_mut()
            .flat_map(|r| r.pubs.iter_mut().chain(r.subs.iter_mut()))
        {
            c.step(&mut buf);
        }
        thread::sleep(Duration::from_millis(1));
    }
    let participants = rooms_n * (publishers + subscribers);
    let sfu_heap = (SFU_HEAP.load(Ordering::Relaxed) - heap_before).max(0) as u64;
    let rss_setup = rss_kib();
    println!(
        "set-up: {participants} peers connected; every subscriber receives {publishers} tracks\n  \
         SFU heap: {} KiB in all, {:.1} KiB per participant; process RSS {} -> {} MiB (SFU and all \
         clients)",
        sfu_heap / 1024,
        sfu_heap as f64 / 1024.0 / participants as f64,
        rss_before / 1024,
        rss_setup / 1024,
    );

    // ---- measurement ----
    let epoch = Instant::now();
    let stop_sending = Arc::new(AtomicBool::new(false));
    let stop_all = Arc::new(AtomicBool::new(false));
    let worker_threads: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(i, mut worker)| {
            let stop = stop_all.clone();
            thread::Builder::new()
                .name(format!("sfu-w{i}"))
                .spawn(move || {
                    let mut recv = RecvBatch::default();
                    let mut added = Vec::with_capacity(1 << 20);
                    let forwarded0 = worker.sfu.stats().forwarded_packets;
                    while !stop.load(Ordering::Relaxed) {
                        if worker.turn(&mut recv, |d| added.push(d)) == 0 {
                            worker.wait();
                        }
                        while worker.sfu.poll_event().is_some() {}
                    }
                    (worker.sfu.stats().forwarded_packets - forwarded0, added)
                })
                .unwrap()
        })
        .collect();
    let (mut all_pubs, mut all_subs): (Vec<Vec<Client>>, Vec<Vec<Client>>) =
        rooms.into_iter().map(|r| (r.pubs, r.subs)).unzip();
    let cpu0 = threads_cpu();
    let pub_thread = {
        let stop = stop_sending.clone();
        let stop_all = stop_all.clone();
        let mut pubs: Vec<Client> = all_pubs.drain(..).flatten().collect();
        thread::spawn(move || {
            yield_to_workers(client_nice);
            let mut buf = vec![0u8; 2048];
            let mut sent = 0u64;
            // Each publisher on a phase of its own in the frame, drawn at random (seeded:
            // the same every run): independent clients keep no step with one another.
            let start = Instant::now();
            let mut phases = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
            let mut next: Vec<Instant> = pubs
                .iter()
                .map(|_| start + FRAME.mul_f64(rand::Rng::random::<f64>(&mut phases)))
                .collect();
            while !stop_all.load(Ordering::Relaxed) {
                let now = Instant::now();
                if !stop.load(Ordering::Relaxed) {
                    for (c, next) in pubs.iter_mut().zip(&mut next) {
                        if now < *next {
                            continue;
                        }
                        *next += FRAME;
                        let mut payload = BytesMut::with_capacity(PAYLOAD_BYTES);
                        payload.extend_from_slice(&[MEASURED]);
                        payload.extend_from_slice(&(epoch.elapsed().as_nanos() as u64).to_be_bytes());
                        payload.resize(PAYLOAD_BYTES, 0);
                        c.peer.send(Instant::now(), MediaKind::Audio, payload.freeze()).unwrap();
                        sent += 1;
                        c.step(&mut buf);
                    }
                }
                for c in &mut pubs {
                    c.step(&mut buf);
                }
                thread::sleep(Duration::from_micros(200));
            }
            sent
        })
    };
    let sub_thread = {
        let stop = stop_all.clone();
        let mut subs: Vec<Client> = all_subs.drain(..).flatten().collect();
        thread::spawn(move || {
            yield_to_workers(client_nice);
            let mut buf = vec![0u8; 2048];
            let mut latencies = Vec::with_capacity(1 << 20);
            let before: usize = subs.iter().map(Client::measured).sum();
            // Payloads already looked at, per subscriber and track.
            let mut seen: Vec<HashMap<String, usize>> = subs
                .iter()
                .map(|c| {
                    c.peer
                        .remote_tracks()
                        .iter()
                        .map(|(id, t)| (id.clone(), t.payloads.len()))
                        .collect()
                })
                .collect();
            while !stop.load(Ordering::Relaxed) {
                let mut read = 0;
                for (i, c) in subs.iter_mut().enumerate() {
                    read += c.step(&mut buf);
                    let now = epoch.elapsed().as_nanos() as u64;
                    for (track_id, track) in c.peer.remote_tracks() {
                        let done = seen[i].entry(track_id.clone()).or_default();
                        for p in &track.payloads[*done..] {
                            if p.first() == Some(&MEASURED) && p.len() >= 9 {
                                let sent = u64::from_be_bytes(p[1..9].try_into().unwrap());
                                latencies.push(Duration::from_nanos(now.saturating_sub(sent)));
                            }
                        }
                        *done = track.payloads.len();
                    }
                }
                if read == 0 {
                    thread::sleep(Duration::from_micros(200));
                }
            }
            let received: usize = subs.iter().map(Client::measured).sum::<usize>() - before;
            (received as u64, latencies)
        })
    };
    thread::sleep(Duration::from_secs(seconds));
    stop_sending.store(true, Ordering::Relaxed);
    thread::sleep(Duration::from_millis(500));
    let cpu1 = threads_cpu();
    stop_all.store(true, Ordering::Relaxed);
    let mut forwarded = 0;
    let mut added = Vec::new();
    let mut per_worker = Vec::new();
    let mut split = Vec::new();
    for (i, t) in worker_threads.into_iter().enumerate() {
        let (f, a) = t.join().unwrap();
        let name = format!("sfu-w{i}");
        let [user1, system1] = cpu1.get(&name).copied().unwrap_or_default();
        let [user0, system0] = cpu0.get(&name).copied().unwrap_or_default();
        let (user, system) = (user1.saturating_sub(user0), system1.saturating_sub(system0));
        per_worker.push((f, user + system));
        split.push((user, system));
        forwarded += f;
        added.extend(a);
    }
    let sent = pub_thread.join().unwrap();
    let (received, mut e2e) = sub_thread.join().unwrap();
    added.sort();
    e2e.sort();
    let expected = sent * subscribers as u64;
    let lost = expected.saturating_sub(received);
    let cpu: Duration = per_worker.iter().map(|(_, c)| *c).sum();
    let per_cpu_s = forwarded as f64 / cpu.as_secs_f64().max(1e-9);
    for (i, ((f, c), (user, system))) in per_worker.iter().zip(&split).enumerate() {
        println!(
            "worker {i}: {f} packets forwarded on {:.2} CPU-s ({:.0}% of a core; user {:.2} us, system {:.2} us per packet)",
            c.as_secs_f64(),
            100.0 * c.as_secs_f64() / (seconds as f64 + 0.5),
            1e6 * user.as_secs_f64() / (*f).max(1) as f64,
            1e6 * system.as_secs_f64() / (*f).max(1) as f64,
        );
    }
    println!(
        "all workers: {forwarded} packets forwarded on {:.2} CPU-s",
        cpu.as_secs_f64()
    );
    println!(
        "  forwarded packets per CPU-second: {per_cpu_s:.0} ({:.2} us of CPU per forwarded packet)",
        1e6 / per_cpu_s.max(1e-9)
    );
    println!(
        "  loss: {:.3}% ({received} of {expected} subscriber packets)",
        100.0 * lost as f64 / expected.max(1) as f64
    );
    println!(
        "  added forwarding latency (arrival -> copies sent): p50 {:?}  p99 {:?}  p999 {:?}",
        percentile(&added, 0.50),
        percentile(&added, 0.99),
        percentile(&added, 0.999)
    );
    println!(
        "  end-to-end one-way latency publisher -> subscriber (through the clients' loops): p50 {:?}  p99 {:?}",
        percentile(&e2e, 0.50),
        percentile(&e2e, 0.99)
    );

    // ---- the machine's raw UDP ceilings, same run ----
    let plain = raw_udp(Duration::from_secs(2), false);
    let batched = raw_udp(Duration::from_secs(2), true);
    println!(
        "raw loopback UDP, {PAYLOAD_BYTES}-byte datagrams, one sender thread to one receiver thread:\n  \
         send_to/recv_from: {:.0} received/s, sender CPU {:.2} us per datagram\n  \
         sendmmsg/recvmmsg: {:.0} received/s, sender CPU {:.2} us per datagram",
        plain.received_per_second,
        plain.sender_us_per_datagram,
        batched.received_per_second,
        batched.sender_us_per_datagram,
    );
    let ceiling = plain.received_per_second.max(batched.received_per_second);
    let per_core_share = 100.0 * per_cpu_s / ceiling.max(1.0);
    println!("  forwarding per CPU-second as a share of the ceiling: {per_core_share:.1}%");

    let workers_json: Vec<String> = per_worker
        .iter()
        .map(|(f, c)| format!("{{\"forwarded\":{f},\"cpu_seconds\":{:.4}}}", c.as_secs_f64()))
        .collect();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let json = format!(
        "{{\"workers\":{workers_n},\"rooms\":{rooms_n},\"publishers\":{publishers},\"subscribers\":{subscribers},\
         \"seconds\":{seconds},\"per_worker\":[{}],\"forwarded\":{forwarded},\"cpu_seconds\":{:.4},\
         \"packets_per_cpu_second\":{per_cpu_s:.0},\"cpu_us_per_packet\":{:.3},\"expected\":{expected},\
         \"received\":{received},\"lost\":{lost},\"added_latency_us\":{{\"p50\":{:.1},\"p99\":{:.1},\"p999\":{:.1}}},\
         \"end_to_end_us\":{{\"p50\":{:.1},\"p99\":{:.1}}},\"sfu_heap_bytes_per_participant\":{},\
         \"rss_kib\":{{\"before\":{rss_before},\"after_setup\":{rss_setup}}},\
         \"ceiling_per_second\":{{\"send_to\":{:.0},\"sendmmsg\":{:.0}}},\
         \"ceiling_sender_us_per_datagram\":{{\"send_to\":{:.3},\"sendmmsg\":{:.3}}},\"share_of_ceiling_percent\":{per_core_share:.1}}}\n",
        workers_json.join(","),
        cpu.as_secs_f64(),
        1e6 / per_cpu_s.max(1e-9),
        us(percentile(&added, 0.50)),
        us(percentile(&added, 0.99)),
        us(percentile(&added, 0.999)),
        us(percentile(&e2e, 0.50)),
        us(percentile(&e2e, 0.99)),
        sfu_heap / participants as u64,
        plain.received_per_second,
        batched.received_per_second,
        plain.sender_us_per_datagram,
        batched.sender_us_per_datagram,
    );
    match std::fs::write(&json_path, json) {
        Ok(()) => println!("figures saved to {json_path}"),
        Err(e) => println!("cannot save {json_path}: {e}"),
    }
}

/// One thread sends `PAYLOAD_BYTES` datagrams as fast as it can for `span`, another receives;
/// datagrams received per second. Batched: 64 per `sendmmsg`, up to 64 per `recvmmsg`.
fn raw_udp(span: Duration, batched: bool) -> Ceiling {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let to: SocketAddr = rx.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut batch = RecvBatch::default();
            let mut n = 0u64;
            loop {
                let got = if batched {
                    match batch.recv(&rx) {
                        Ok(k) => Ok(k as u64),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            wait_readable(&rx, Duration::from_millis(200)).map(|_| 0)
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    rx.recv_from(&mut buf).map(|_| 1)
                };
                match got {
                    Ok(k) => n += k,
                    Err(_) if stop.load(Ordering::Relaxed) => return n,
                    Err(_) => {}
                }
                if stop.load(Ordering::Relaxed) && batched && !wait_readable(&rx, Duration::ZERO).unwrap_or(false) {
                    return n;
                }
            }
        })
    };
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let payload = [7u8; PAYLOAD_BYTES];
    let mut send = SendBatch::default();
    let mut sent = 0u64;
    let cpu0 = thread_cpu();
    let start = Instant::now();
    while start.elapsed() < span {
        if batched {
            for _ in 0..64 {
                send.push(to, None, BytesMut::from(&payload[..]));
            }
            while !send.is_empty() {
                sent += send.flush(&tx).unwrap_or(0) as u64;
            }
        } else {
            sent += u64::from(tx.send_to(&payload, to).is_ok());
        }
    }
    let elapsed = start.elapsed();
    let sender_cpu = thread_cpu().saturating_sub(cpu0);
    stop.store(true, Ordering::Relaxed);
    let received = receiver.join().unwrap();
    Ceiling {
        received_per_second: received as f64 / elapsed.as_secs_f64(),
        sender_us_per_datagram: 1e6 * sender_cpu.as_secs_f64() / sent.max(1) as f64,
    }
}

/// A raw UDP ceiling: what one receiver thread took in, and the sender thread's CPU for each
/// datagram it sent (the system calls and the kernel's loopback delivery: the least one
/// forwarded copy can cost).
struct Ceiling {
    received_per_second: f64,
    sender_us_per_datagram: f64,
}

/// The calling thread's CPU time, to the nanosecond.
fn thread_cpu() -> Duration {
    let mut ts = nix::libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    if unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
