//! Fan-out benchmark: audio publishers x subscribers through one SFU on loopback UDP, beside
//! the machine's raw UDP send/receive ceiling measured in the same run.
//!
//! `cargo bench -p huddle-sfu --bench fanout` (defaults: 10 publishers, 100 subscribers, 5 s).
//! Override with `FANOUT_PUBLISHERS`, `FANOUT_SUBSCRIBERS`, `FANOUT_SECONDS`.
//!
//! Prints: packets the SFU forwarded per CPU-second of its own thread, loss (what subscribers
//! should have received against what they did), the SFU's added forwarding latency (from a
//! datagram's arrival to the last copy leaving, p50/p99) and the end-to-end one-way latency
//! publisher -> subscriber (p50/p99), then the raw UDP ceiling: datagrams one thread sends and
//! another receives per second on loopback.
// A real-time load program: it drives the SFU from real sockets and the real clock.
#![allow(clippy::disallowed_methods)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use huddle_sfu::client::{ClientConfig, ClientPeer, MediaKind};
use huddle_sfu::{ParticipantId, PeerKey, RoomConfig, RoomId, Sfu, SfuConfig};

const ROOM: RoomId = RoomId(1);
/// One Opus frame every 20 ms.
const FRAME: Duration = Duration::from_millis(20);
const PAYLOAD_BYTES: usize = 100;
/// Marks a measured packet (setup primers carry a different first byte).
const MEASURED: u8 = 0xAB;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the pointer it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
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
        let mut config = ClientConfig::new(udp.local_addr().unwrap(), name);
        config.video = false;
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
}

struct SfuSide {
    sfu: Sfu,
    udp: UdpSocket,
}

impl SfuSide {
    fn step(&mut self, buf: &mut [u8]) -> usize {
        let mut read = 0;
        while let Ok((n, from)) = self.udp.recv_from(buf) {
            let _ = self.sfu.handle_datagram(Instant::now(), from, &buf[..n]);
            read += 1;
            self.flush();
        }
        let now = Instant::now();
        if self.sfu.poll_timeout().is_some_and(|at| at <= now) {
            self.sfu.handle_timeout(now);
        }
        self.flush();
        read
    }

    fn flush(&mut self) {
        while let Some(t) = self.sfu.poll_transmit() {
            let _ = self.udp.send_to(&t.payload, t.to);
        }
    }
}

fn negotiate(sfu: &mut SfuSide, client: &mut Client, key: PeerKey) {
    let now = Instant::now();
    sfu.sfu.join(now, key).unwrap();
    let offer = client.peer.create_offer(now).unwrap();
    let reply = sfu.sfu.handle_offer(now, key, offer, &[]).unwrap();
    client.peer.apply_answer(now, reply.answer.unwrap()).unwrap();
    follow(sfu, client, key, reply.offer);
}

fn follow(sfu: &mut SfuSide, client: &mut Client, key: PeerKey, mut offer: Option<(u64, String)>) {
    while let Some((id, sdp)) = offer.take() {
        if let Some(answer) = client.peer.apply_offer(Instant::now(), sdp).unwrap() {
            offer = sfu.sfu.handle_answer(Instant::now(), key, id, answer).unwrap().offer;
        }
    }
}

fn key(participant: u64) -> PeerKey {
    PeerKey {
        room: ROOM,
        participant: ParticipantId(participant.into()),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let publishers = env_or("FANOUT_PUBLISHERS", 10);
    let subscribers = env_or("FANOUT_SUBSCRIBERS", 100);
    let seconds = env_or("FANOUT_SECONDS", 5) as u64;
    println!("fan-out: {publishers} audio publishers x {subscribers} subscribers, {seconds} s, loopback UDP");

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let mut config = SfuConfig::new(udp.local_addr().unwrap());
    assert!(
        publishers + subscribers <= huddle_sfu::MAX_PARTICIPANTS,
        "one room holds at most {} participants",
        huddle_sfu::MAX_PARTICIPANTS
    );
    config.room = RoomConfig {
        max_participants: publishers + subscribers,
        max_tracks_per_participant: 1,
    };
    let mut sfu = SfuSide {
        sfu: Sfu::new(config).unwrap(),
        udp,
    };

    // ---- set-up: everyone joins and connects; publishers prime their tracks ----
    let mut pubs: Vec<Client> = Vec::new();
    for p in 0..publishers {
        let mut client = Client::new(format!("pub{p}"));
        negotiate(&mut sfu, &mut client, key(p as u64));
        pubs.push(client);
    }
    let sub_keys: Vec<PeerKey> = (0..subscribers).map(|s| key(1000 + s as u64)).collect();
    let mut subs: Vec<Client> = Vec::new();
    let mut buf = vec![0u8; 2048];
    // Join in batches, each connected before the next, as people trickle into a real call
    // (a burst of a hundred handshakes at once would overflow the loopback socket buffers).
    for batch in sub_keys.chunks(10) {
        let first = subs.len();
        for k in batch {
            let mut client = Client::new(format!("sub{}", subs.len()));
            negotiate(&mut sfu, &mut client, *k);
            subs.push(client);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !subs[first..].iter().all(|c| c.peer.is_connected()) {
            assert!(Instant::now() < deadline, "subscribers {first}.. did not connect");
            sfu.step(&mut buf);
            for c in pubs.iter_mut().chain(subs.iter_mut()) {
                c.step(&mut buf);
            }
            while let Some(event) = sfu.sfu.poll_event() {
                if let huddle_sfu::SfuEvent::Offer { peer, offer_id, sdp } = event
                    && let Some(i) = sub_keys.iter().position(|k| *k == peer)
                {
                    follow(&mut sfu, &mut subs[i], peer, Some((offer_id, sdp)));
                }
            }
            thread::sleep(Duration::from_micros(200));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut last_primer = Instant::now() - FRAME;
    let setup_start = Instant::now();
    let mut last_connected = 0;
    loop {
        sfu.step(&mut buf);
        for c in &mut pubs {
            c.step(&mut buf);
        }
        for c in &mut subs {
            c.step(&mut buf);
        }
        while let Some(event) = sfu.sfu.poll_event() {
            if let huddle_sfu::SfuEvent::Offer { peer, offer_id, sdp } = event
                && let Some(i) = sub_keys.iter().position(|k| *k == peer)
            {
                follow(&mut sfu, &mut subs[i], peer, Some((offer_id, sdp)));
            }
        }
        // Media only once everyone is connected, so the handshakes are not drowned.
        let connected = pubs.iter().chain(&subs).all(|c| c.peer.is_connected());
        if connected && last_primer.elapsed() >= FRAME {
            last_primer = Instant::now();
            for c in pubs.iter_mut().filter(|c| c.peer.is_connected()) {
                c.peer
                    .send(Instant::now(), MediaKind::Audio, Bytes::from_static(b"primer"))
                    .unwrap();
            }
        }
        let ready = connected && subs.iter().all(|c| c.peer.remote_tracks().len() == publishers);
        let now_connected = pubs.iter().chain(&subs).filter(|c| c.peer.is_connected()).count();
        if std::env::var("FANOUT_DEBUG").is_ok() && now_connected != last_connected {
            eprintln!(
                "{:?}: {now_connected} connected, {} failed",
                setup_start.elapsed(),
                pubs.iter().chain(&subs).filter(|c| c.peer.has_failed()).count()
            );
            last_connected = now_connected;
        }
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "set-up did not complete: {} of {} publishers and {} of {} subscribers connected; tracks per subscriber {:?}",
            pubs.iter().filter(|c| c.peer.is_connected()).count(),
            publishers,
            subs.iter().filter(|c| c.peer.is_connected()).count(),
            subscribers,
            subs.iter().map(|c| c.peer.remote_tracks().len()).collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_micros(200));
    }
    println!(
        "set-up: {} peers connected, every subscriber receives {publishers} tracks",
        publishers + subscribers
    );

    // ---- measurement ----
    let epoch = Instant::now();
    let stop_sending = Arc::new(AtomicBool::new(false));
    let stop_all = Arc::new(AtomicBool::new(false));
    let sfu_thread = {
        let stop = stop_all.clone();
        thread::spawn(move || {
            let mut buf = vec![0u8; 2048];
            let mut added = Vec::with_capacity(1 << 20);
            let cpu0 = thread_cpu();
            let forwarded0 = sfu.sfu.stats().forwarded_packets;
            while !stop.load(Ordering::Relaxed) {
                // Take what is waiting (a batch), then run the due timers (the pacer releases
                // copies there) and send; each datagram's added latency runs from its arrival
                // to the end of its batch's sending.
                let mut arrivals = Vec::new();
                while let Ok((n, from)) = sfu.udp.recv_from(&mut buf) {
                    let arrived = Instant::now();
                    let _ = sfu.sfu.handle_datagram(arrived, from, &buf[..n]);
                    arrivals.push(arrived);
                    if arrivals.len() >= 16 {
                        break;
                    }
                }
                let now = Instant::now();
                if sfu.sfu.poll_timeout().is_some_and(|at| at <= now) {
                    sfu.sfu.handle_timeout(now);
                }
                sfu.flush();
                let done = Instant::now();
                added.extend(arrivals.iter().map(|a| done - *a));
                let any = !arrivals.is_empty();
                while sfu.sfu.poll_event().is_some() {}
                if !any {
                    thread::sleep(Duration::from_micros(50));
                }
            }
            let cpu = thread_cpu() - cpu0;
            (sfu.sfu.stats().forwarded_packets - forwarded0, cpu, added)
        })
    };
    let pub_thread = {
        let stop = stop_sending.clone();
        let stop_all = stop_all.clone();
        thread::spawn(move || {
            let mut buf = vec![0u8; 2048];
            let mut sent = 0u64;
            let mut next = Instant::now();
            while !stop_all.load(Ordering::Relaxed) {
                if !stop.load(Ordering::Relaxed) && Instant::now() >= next {
                    next += FRAME;
                    for c in &mut pubs {
                        let mut payload = vec![MEASURED];
                        payload.extend_from_slice(&(epoch.elapsed().as_nanos() as u64).to_be_bytes());
                        payload.resize(PAYLOAD_BYTES, 0);
                        c.peer
                            .send(Instant::now(), MediaKind::Audio, Bytes::from(payload))
                            .unwrap();
                        sent += 1;
                    }
                }
                for c in &mut pubs {
                    c.step(&mut buf);
                }
                thread::sleep(Duration::from_micros(500));
            }
            sent
        })
    };
    let sub_thread = {
        let stop = stop_all.clone();
        thread::spawn(move || {
            let mut buf = vec![0u8; 2048];
            let mut latencies = Vec::with_capacity(1 << 20);
            // Payloads already looked at, per subscriber and track.
            let mut seen: Vec<std::collections::HashMap<String, usize>> = vec![Default::default(); subs.len()];
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
            let received: usize = subs
                .iter()
                .map(|c| {
                    c.peer
                        .remote_tracks()
                        .values()
                        .flat_map(|t| t.payloads.iter())
                        .filter(|p| p.first() == Some(&MEASURED))
                        .count()
                })
                .sum();
            (received as u64, latencies)
        })
    };
    thread::sleep(Duration::from_secs(seconds));
    stop_sending.store(true, Ordering::Relaxed);
    thread::sleep(Duration::from_millis(500));
    stop_all.store(true, Ordering::Relaxed);
    let (forwarded, cpu, mut added) = sfu_thread.join().unwrap();
    let sent = pub_thread.join().unwrap();
    let (received, mut e2e) = sub_thread.join().unwrap();
    added.sort();
    e2e.sort();
    let expected = sent * subscribers as u64;
    let loss = 1.0 - received as f64 / expected.max(1) as f64;
    println!(
        "SFU thread: {forwarded} packets forwarded on {:.2} CPU-s",
        cpu.as_secs_f64()
    );
    println!(
        "  forwarded packets per CPU-second: {:.0}",
        forwarded as f64 / cpu.as_secs_f64().max(1e-9)
    );
    println!(
        "  loss: {:.3}% ({received} of {expected} subscriber packets)",
        loss.max(0.0) * 100.0
    );
    println!(
        "  added forwarding latency (arrival -> last copy sent): p50 {:?}  p99 {:?}",
        percentile(&added, 0.50),
        percentile(&added, 0.99)
    );
    println!(
        "  end-to-end one-way latency publisher -> subscriber: p50 {:?}  p99 {:?}",
        percentile(&e2e, 0.50),
        percentile(&e2e, 0.99)
    );

    // ---- the machine's raw UDP ceiling, same run ----
    let (sent, received, elapsed) = raw_udp(Duration::from_secs(2));
    println!(
        "raw loopback UDP ({PAYLOAD_BYTES}-byte datagrams, one sender thread, one receiver thread): \
         {:.0} sent/s, {:.0} received/s",
        sent as f64 / elapsed.as_secs_f64(),
        received as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  SFU forwarding rate as a share of the raw receive ceiling: {:.1}%",
        100.0 * (forwarded as f64 / seconds as f64) / (received as f64 / elapsed.as_secs_f64()).max(1.0)
    );
}

/// One thread sends `PAYLOAD_BYTES` datagrams as fast as it can for `span`, another receives.
fn raw_udp(span: Duration) -> (u64, u64, Duration) {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let to: SocketAddr = rx.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut n = 0u64;
            loop {
                match rx.recv_from(&mut buf) {
                    Ok(_) => n += 1,
                    Err(_) if stop.load(Ordering::Relaxed) => return n,
                    Err(_) => {}
                }
            }
        })
    };
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let payload = [7u8; PAYLOAD_BYTES];
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < span {
        if tx.send_to(&payload, to).is_ok() {
            sent += 1;
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let received = receiver.join().unwrap();
    (sent, received, elapsed)
}
