//! Scenario tests for the SFU on a virtual clock: the SFU and its clients are sans-IO state
//! machines; datagrams travel through an in-memory network and time only moves when the
//! harness moves it. No sockets, no sleeping.
// The virtual clock starts at one real `Instant`; nothing here waits on the real clock.
#![allow(clippy::disallowed_methods)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use huddle_sfu::client::{ClientConfig, ClientPeer, MediaKind, VideoCodecChoice};
use huddle_sfu::{ParticipantId, PeerKey, RoomId, Sfu, SfuConfig, SfuError, SfuEvent, TrackId, TrackKind};
use huddle_signaling::Layer;
use huddle_signaling::TrackSource;

const ROOM: RoomId = RoomId(1);
const SFU_ADDR: &str = "10.0.0.1:5000";

struct Net {
    now: Instant,
    sfu: Sfu,
    clients: HashMap<u64, ClientPeer>,
    /// Clients whose network vanished: what they send and what is sent to them is lost.
    cut: HashSet<u64>,
    /// DTLS records still to drop (in either direction), to exercise handshake retransmission.
    drop_dtls: usize,
    /// Clients on a lossy downlink: every n-th datagram the SFU sends them is lost.
    lossy: HashMap<u64, u64>,
    sent_to: HashMap<u64, u64>,
    /// The last RTP datagram each client sent (as it went on the wire: SRTP).
    last_rtp: HashMap<u64, Vec<u8>>,
    events: Vec<SfuEvent>,
    /// Participants whose SFU offers are held back (not answered) by the harness.
    hold_offers: HashSet<u64>,
    held: Vec<(u64, u64, String)>,
    /// Every RTP datagram the SFU sent, by recipient, as it went on the wire (SRTP: the
    /// header, extensions included, is in the clear).
    rtp_to: Vec<(u64, Vec<u8>)>,
    /// The SFU's latest offer to each participant.
    sfu_sdp: HashMap<u64, String>,
    /// Every STUN message on the wire: when, the client, whether the SFU sent it, and the
    /// message.
    stun: Vec<(Instant, u64, bool, Stun)>,
}

/// A STUN message's type, transaction id and whether it nominates (USE-CANDIDATE).
#[derive(Clone, Debug, PartialEq)]
struct Stun {
    kind: u16,
    transaction: [u8; 12],
    nominates: bool,
}

impl Stun {
    const BINDING_REQUEST: u16 = 0x0001;
    const BINDING_SUCCESS: u16 = 0x0101;

    fn parse(datagram: &[u8]) -> Option<Self> {
        if datagram.len() < 20 || datagram[0] >> 6 != 0 || datagram[4..8] != [0x21, 0x12, 0xa4, 0x42] {
            return None;
        }
        let mut nominates = false;
        let mut at = 20;
        while at + 4 <= datagram.len() {
            let kind = u16::from_be_bytes([datagram[at], datagram[at + 1]]);
            let len = usize::from(u16::from_be_bytes([datagram[at + 2], datagram[at + 3]]));
            nominates |= kind == 0x0025;
            at += 4 + len.div_ceil(4) * 4;
        }
        Some(Self {
            kind: u16::from_be_bytes([datagram[0], datagram[1]]),
            transaction: datagram[8..20].try_into().unwrap(),
            nominates,
        })
    }
}

fn key(p: u64) -> PeerKey {
    PeerKey {
        room: ROOM,
        participant: ParticipantId(p.into()),
    }
}

fn client_addr(p: u64) -> SocketAddr {
    format!("10.0.1.{p}:6000").parse().unwrap()
}

impl Net {
    fn new() -> Self {
        let now = Instant::now();
        // Bound to the wildcard address and advertising another, like a server on its
        // default `0.0.0.0` (or behind 1:1 NAT): clients only ever see `SFU_ADDR`.
        let mut config = SfuConfig::new("0.0.0.0:5000".parse().unwrap());
        config.public_addr = SFU_ADDR.parse().unwrap();
        config.ice_disconnected_timeout = Duration::from_secs(2);
        config.ice_failed_timeout = Duration::from_secs(4);
        config.ice_keepalive_interval = Duration::from_millis(500);
        Self {
            now,
            sfu: Sfu::new(config).unwrap(),
            clients: HashMap::new(),
            cut: HashSet::new(),
            drop_dtls: 0,
            lossy: HashMap::new(),
            sent_to: HashMap::new(),
            last_rtp: HashMap::new(),
            events: Vec::new(),
            hold_offers: HashSet::new(),
            held: Vec::new(),
            rtp_to: Vec::new(),
            sfu_sdp: HashMap::new(),
            stun: Vec::new(),
        }
    }

    /// Joins participant `p`, publishes its audio and video and completes negotiation.
    fn join(&mut self, p: u64) {
        self.join_with(p, |_| {});
    }

    fn join_with(&mut self, p: u64, adjust: impl FnOnce(&mut ClientConfig)) {
        let mut config = ClientConfig::new(client_addr(p), format!("c{p}"));
        adjust(&mut config);
        let mut client = ClientPeer::new(self.now, config).unwrap();
        self.sfu.join(self.now, key(p)).unwrap();
        let offer = client.create_offer(self.now).unwrap();
        let sources = vec![
            (client.track_id(MediaKind::Audio), TrackSource::Microphone),
            (client.track_id(MediaKind::Video), TrackSource::Camera),
            (client.track_id(MediaKind::Screen), TrackSource::Screen),
        ];
        let reply = self.sfu.handle_offer(self.now, key(p), offer, &sources).unwrap();
        client.apply_answer(self.now, reply.answer.unwrap()).unwrap();
        self.clients.insert(p, client);
        self.follow_up(p, reply.offer);
    }

    /// Answers the SFU's offer to `p` (and any it makes right after).
    fn follow_up(&mut self, p: u64, mut offer: Option<(u64, String)>) {
        while let Some((offer_id, sdp)) = offer.take() {
            self.sfu_sdp.insert(p, sdp.clone());
            let client = self.clients.get_mut(&p).unwrap();
            let Some(answer) = client.apply_offer(self.now, sdp).unwrap() else {
                return;
            };
            offer = self
                .sfu
                .handle_answer(self.now, key(p), offer_id, answer)
                .unwrap()
                .offer;
        }
    }

    /// Moves datagrams and events until the network is quiet, then time by `step`, `rounds`
    /// times.
    fn run(&mut self, rounds: usize, step: Duration) {
        for _ in 0..rounds {
            self.pump();
            self.now += step;
            self.sfu.handle_timeout(self.now);
            for client in self.clients.values_mut() {
                if client.poll_timeout().is_some_and(|at| at <= self.now) {
                    client.handle_timeout(self.now);
                }
            }
            self.pump();
        }
    }

    fn pump(&mut self) {
        let sfu_addr: SocketAddr = SFU_ADDR.parse().unwrap();
        loop {
            let mut moved = false;
            while let Some(t) = self.sfu.poll_transmit() {
                moved = true;
                let Some((&p, client)) = self.clients.iter_mut().find(|(_, c)| c.local_addr() == t.to) else {
                    continue;
                };
                if self.drop_dtls > 0 && is_dtls(&t.payload) {
                    self.drop_dtls -= 1;
                    continue;
                }
                let count = self.sent_to.entry(p).or_default();
                *count += 1;
                if self.lossy.get(&p).is_some_and(|every| count.is_multiple_of(*every)) {
                    continue;
                }
                if let Some(stun) = Stun::parse(&t.payload) {
                    self.stun.push((self.now, p, true, stun));
                }
                if !self.cut.contains(&p) {
                    if is_rtp(&t.payload) {
                        self.rtp_to.push((p, t.payload.to_vec()));
                    }
                    client.handle_datagram(self.now, sfu_addr, t.to, &t.payload);
                }
            }
            let mut outgoing = Vec::new();
            for (&p, client) in &mut self.clients {
                while let Some((_, to, payload)) = client.poll_transmit() {
                    if to == sfu_addr && !self.cut.contains(&p) {
                        if is_rtp(&payload) {
                            self.last_rtp.insert(p, payload.to_vec());
                        }
                        if let Some(stun) = Stun::parse(&payload) {
                            self.stun.push((self.now, p, false, stun));
                        }
                        outgoing.push((client.local_addr(), payload));
                    }
                }
            }
            for (from, payload) in outgoing {
                moved = true;
                if self.drop_dtls > 0 && is_dtls(&payload) {
                    self.drop_dtls -= 1;
                    continue;
                }
                let _ = self.sfu.handle_datagram(self.now, from, &payload);
            }
            while let Some(event) = self.sfu.poll_event() {
                moved = true;
                if let SfuEvent::Offer { peer, offer_id, sdp } = &event {
                    let p = peer.participant.0 as u64;
                    if self.hold_offers.contains(&p) {
                        self.held.push((p, *offer_id, sdp.clone()));
                    } else if self.clients.contains_key(&p) {
                        self.follow_up(p, Some((*offer_id, sdp.clone())));
                    }
                }
                self.events.push(event);
            }
            if !moved {
                return;
            }
        }
    }

    fn run_until(&mut self, what: &str, mut done: impl FnMut(&Net) -> bool) {
        for _ in 0..2000 {
            if done(self) {
                return;
            }
            self.run(1, Duration::from_millis(10));
        }
        panic!("timed out (virtual) waiting for {what}");
    }

    fn all_connected(&self) -> bool {
        self.clients.values().all(ClientPeer::is_connected)
    }

    /// Every client sends `frames` audio and video packets with payloads naming their origin.
    fn send_media(&mut self, frames: usize) {
        for frame in 0..frames {
            let ps: Vec<u64> = self.clients.keys().copied().collect();
            for p in ps {
                let client = self.clients.get_mut(&p).unwrap();
                client
                    .send(self.now, MediaKind::Audio, audio_payload(p, frame))
                    .unwrap();
                client
                    .send(self.now, MediaKind::Video, video_payload(p, frame))
                    .unwrap();
            }
            self.run(1, Duration::from_millis(20));
        }
    }

    /// Client `p` asks the SFU for a keyframe of a track it receives.
    fn request_keyframe(&mut self, p: u64, track: &str) {
        let now = self.now;
        self.clients.get_mut(&p).unwrap().request_keyframe(now, track).unwrap();
    }

    /// One packet of each kind from every client, so the SFU sees their tracks.
    fn prime(&mut self) {
        let now = self.now;
        for client in self.clients.values_mut() {
            client
                .send(now, MediaKind::Audio, Bytes::from_static(b"primer"))
                .unwrap();
            client
                .send(now, MediaKind::Video, Bytes::from_static(&[0x10, 0x00, b'p']))
                .unwrap();
        }
        self.run(5, Duration::from_millis(10));
    }

    /// The payloads client `to` received from participant `from` of `kind`.
    fn received(&self, to: u64, from: u64, kind: &str) -> Vec<Bytes> {
        let client = &self.clients[&to];
        let matching: Vec<_> = client
            .remote_tracks()
            .values()
            .filter(|t| t.stream_id == format!("p{from}") && t.kind == kind)
            .collect();
        assert!(matching.len() <= 1, "one {kind} track per participant");
        let primer = |p: &Bytes| p.ends_with(b"primer") || p.as_ref() == [0x10, 0x00, b'p'];
        matching
            .first()
            .map(|t| t.payloads.iter().filter(|p| !primer(p)).cloned().collect())
            .unwrap_or_default()
    }

    fn track_of(&self, owner: u64, kind: TrackKind) -> String {
        self.events
            .iter()
            .find_map(|e| match e {
                SfuEvent::TrackPublished {
                    owner: o,
                    kind: k,
                    track_id,
                    ..
                } if *o == ParticipantId(owner.into()) && *k == kind => Some(track_id.clone()),
                _ => None,
            })
            .expect("published track")
    }
}

/// RFC 7983: DTLS records start with a content type byte of 20 to 63.
fn is_dtls(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| (20..=63).contains(b))
}

/// RFC 5761: RTP when the version is 2 and the second byte is not an RTCP packet type.
fn is_rtp(datagram: &[u8]) -> bool {
    datagram.len() > 12 && datagram[0] >> 6 == 2 && !(192..=223).contains(&datagram[1])
}

/// An RTP datagram's SSRC and header extensions (one- or two-byte form, RFC 8285).
fn rtp_header(packet: &[u8]) -> (u32, Vec<(u8, Vec<u8>)>) {
    let ssrc = u32::from_be_bytes(packet[8..12].try_into().unwrap());
    let mut extensions = Vec::new();
    if packet[0] & 0x10 != 0 {
        let at = 12 + 4 * usize::from(packet[0] & 0x0f);
        let profile = u16::from_be_bytes([packet[at], packet[at + 1]]);
        let words = usize::from(u16::from_be_bytes([packet[at + 2], packet[at + 3]]));
        let body = &packet[at + 4..at + 4 + 4 * words];
        let mut i = 0;
        while i < body.len() {
            let (id, len, head) = if profile == 0xBEDE {
                if body[i] == 0 {
                    i += 1;
                    continue;
                }
                (body[i] >> 4, usize::from(body[i] & 0x0f) + 1, 1)
            } else {
                if body[i] == 0 {
                    i += 1;
                    continue;
                }
                (body[i], usize::from(body[i + 1]), 2)
            };
            extensions.push((id, body[i + head..i + head + len].to_vec()));
            i += head + len;
        }
    }
    (ssrc, extensions)
}

/// The m-section of `sdp` that announces `ssrc`: its `a=mid`, and the id its `sdes:mid`
/// extmap has (if it negotiates one).
fn section_of(sdp: &str, ssrc: u32) -> Option<(String, Option<u8>)> {
    let announces = format!("a=ssrc:{ssrc} ");
    sdp.split("\nm=")
        .skip(1)
        .find(|m| m.lines().any(|l| l.starts_with(&announces)))
        .map(|m| {
            let mid = m
                .lines()
                .find_map(|l| l.strip_prefix("a=mid:"))
                .unwrap()
                .trim()
                .to_string();
            let ext = m.lines().find_map(|l| {
                let rest = l.strip_prefix("a=extmap:")?;
                let (id, uri) = rest.split_once(' ')?;
                (uri.trim() == "urn:ietf:params:rtp-hdrext:sdes:mid").then(|| id.split('/').next()?.parse().ok())?
            });
            (mid, ext)
        })
}

/// The SSRCs an SDP announces.
fn ssrcs_in(sdp: &str) -> HashSet<u32> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=ssrc:")?.split(' ').next()?.parse().ok())
        .collect()
}

fn audio_payload(p: u64, frame: usize) -> Bytes {
    Bytes::from(format!("opus from {p} #{frame}"))
}

/// A VP8 payload: descriptor (start of partition 0), then a frame header whose low bit says
/// key (0) or inter (1) frame, then bytes naming the origin.
fn video_payload(p: u64, frame: usize) -> Bytes {
    let mut payload = vec![0x10, if frame == 0 { 0x00 } else { 0x01 }];
    payload.extend_from_slice(format!("vp8 from {p} #{frame}").as_bytes());
    Bytes::from(payload)
}

/// Two participants connected, each receiving the other's audio and video.
fn two_party_call_with_media() -> Net {
    let mut net = Net::new();
    net.join(1);
    net.join(2);
    net.run_until("everyone connected", Net::all_connected);
    net.prime();
    net.send_media(3);
    net
}

fn three_party_call() -> Net {
    let mut net = Net::new();
    for p in 1..=3 {
        net.join(p);
    }
    net.run_until("everyone connected", Net::all_connected);
    // A track is published when its first packet arrives (its SSRC may only be known then).
    net.prime();
    // Let the renegotiations settle and the keyframe-request throttle pass.
    net.run(60, Duration::from_millis(10));
    net
}

#[test]
fn three_peers_publish_and_each_receives_the_other_two() {
    let mut net = three_party_call();
    for p in 1..=3 {
        assert_eq!(
            net.sfu.subscriptions(key(p)).len(),
            4,
            "p{p} receives 2 tracks from each of 2 others"
        );
    }
    net.send_media(30);
    net.run(20, Duration::from_millis(10));
    for to in 1..=3 {
        for from in (1..=3).filter(|f| *f != to) {
            let audio: Vec<Bytes> = (0..30).map(|f| audio_payload(from, f)).collect();
            let video: Vec<Bytes> = (0..30).map(|f| video_payload(from, f)).collect();
            assert_eq!(net.received(to, from, "audio"), audio, "audio {from} -> {to}");
            assert_eq!(net.received(to, from, "video"), video, "video {from} -> {to}");
        }
        assert!(
            net.received(to, to, "audio").is_empty(),
            "nobody receives their own tracks"
        );
    }
    assert!(net.sfu.stats().forwarded_packets >= 3 * 2 * 2 * 30);
    // Each subscriber's transport-wide feedback reached the SFU's congestion controller.
    for p in 1..=3 {
        let estimate = net.sfu.downlink_estimate(key(p)).unwrap();
        assert_ne!(
            estimate,
            huddle_sfu::bwe::INITIAL_BPS as u64,
            "p{p}: the estimate never moved"
        );
    }
    // Each subscriber is told once of each track it receives, and of no other.
    let mut published: Vec<(u64, u64, TrackKind)> = net
        .events
        .iter()
        .filter_map(|e| match e {
            SfuEvent::TrackPublished { to, owner, kind, .. } => Some((to.0 as u64, owner.0 as u64, *kind)),
            _ => None,
        })
        .collect();
    published.sort_unstable_by_key(|(to, owner, kind)| (*to, *owner, *kind as u8));
    let mut expected: Vec<(u64, u64, TrackKind)> = (1..=3)
        .flat_map(|to| {
            (1..=3)
                .filter(move |owner| *owner != to)
                .flat_map(move |owner| [(to, owner, TrackKind::Audio), (to, owner, TrackKind::Video)])
        })
        .collect();
    expected.sort_unstable_by_key(|(to, owner, kind)| (*to, *owner, *kind as u8));
    assert_eq!(published, expected);
}

#[test]
fn a_client_offer_that_crosses_the_sfus_offer_withdraws_it_and_says_so() {
    let mut net = Net::new();
    net.join(1);
    net.join(2);
    net.run_until("two connected", Net::all_connected);
    net.prime();
    net.run(20, Duration::from_millis(10));
    // Participant 3 arrives; the SFU's offer to 1 (adding 3's tracks) is still on its way
    // when 1 sends an offer of its own.
    net.hold_offers.insert(1);
    net.join(3);
    net.run_until("three connected", Net::all_connected);
    net.prime();
    net.run_until("the SFU offered 1 the newcomer's tracks", |n| !n.held.is_empty());
    let (_, withdrawn, _) = net.held.last().cloned().unwrap();
    let now = net.now;
    let client = net.clients.get_mut(&1).unwrap();
    let offer = client.create_offer(now).unwrap();
    let sources = vec![
        (client.track_id(MediaKind::Audio), TrackSource::Microphone),
        (client.track_id(MediaKind::Video), TrackSource::Camera),
    ];
    let reply = net.sfu.handle_offer(now, key(1), offer, &sources).unwrap();
    assert_eq!(reply.withdrawn, Some(withdrawn), "the reply names the withdrawn offer");
    net.clients
        .get_mut(&1)
        .unwrap()
        .apply_answer(now, reply.answer.unwrap())
        .unwrap();
    let (next_id, _) = reply.offer.clone().expect("the SFU offers the newcomer's tracks again");
    assert!(next_id > withdrawn);
    net.hold_offers.clear();
    net.follow_up(1, reply.offer);
    net.run(40, Duration::from_millis(10));
    net.send_media(10);
    net.run(20, Duration::from_millis(10));
    let audio: Vec<Bytes> = (0..10).map(|f| audio_payload(3, f)).collect();
    assert_eq!(net.received(1, 3, "audio"), audio, "1 hears the newcomer");
}

#[test]
fn a_subscribers_keyframe_request_reaches_the_publisher() {
    let mut net = three_party_call();
    net.send_media(3);
    net.run(60, Duration::from_millis(10));
    let video_of_1 = net.track_of(1, TrackKind::Video);
    let audio_of_1 = net.track_of(1, TrackKind::Audio);
    let before = net.clients[&1].keyframe_requests();
    let requests_before = net.sfu.stats().keyframe_requests;

    net.request_keyframe(2, &video_of_1);
    net.run(2, Duration::from_millis(10));
    assert_eq!(
        net.clients[&1].keyframe_requests(),
        before + 1,
        "PLI forwarded to the publisher"
    );
    assert_eq!(net.sfu.stats().keyframe_requests, requests_before + 1);

    // More requests inside the throttle interval are merged into one, sent when it ends.
    for p in [3, 2, 3] {
        net.request_keyframe(p, &video_of_1);
        net.run(2, Duration::from_millis(10));
    }
    assert_eq!(net.clients[&1].keyframe_requests(), before + 1, "throttled");
    net.run(50, Duration::from_millis(10));
    assert_eq!(
        net.clients[&1].keyframe_requests(),
        before + 2,
        "the merged request, once"
    );

    // Audio has no keyframes: nothing goes upstream.
    net.request_keyframe(2, &audio_of_1);
    net.run(60, Duration::from_millis(10));
    assert_eq!(net.clients[&1].keyframe_requests(), before + 2);

    // After the interval, a new request goes straight through.
    net.request_keyframe(3, &video_of_1);
    net.run(2, Duration::from_millis(10));
    assert_eq!(net.clients[&1].keyframe_requests(), before + 3);
}

#[test]
fn a_leaving_peers_tracks_disappear_from_the_others() {
    let mut net = three_party_call();
    let now = net.now;
    net.sfu.leave(now, key(3)).unwrap();
    net.clients.remove(&3);
    net.run(20, Duration::from_millis(10));

    let unpublished: Vec<_> = net
        .events
        .iter()
        .filter_map(|e| match e {
            SfuEvent::TrackUnpublished { owner, source, .. } => Some((*owner, *source)),
            _ => None,
        })
        .collect();
    assert_eq!(unpublished.len(), 2);
    assert!(unpublished.iter().all(|(owner, _)| *owner == ParticipantId(3)));
    for p in 1..=2 {
        assert_eq!(
            net.sfu.subscriptions(key(p)).len(),
            2,
            "p{p} keeps only the other's tracks"
        );
    }
    assert_eq!(net.sfu.participants(ROOM), vec![ParticipantId(1), ParticipantId(2)]);

    // The two who stayed still talk, through the renegotiated connections.
    let before = net.received(2, 1, "audio").len();
    net.send_media(5);
    net.run(10, Duration::from_millis(10));
    assert_eq!(net.received(2, 1, "audio").len(), before + 5);

    // The last two leave: the room and every connection are gone.
    let now = net.now;
    net.sfu.leave(now, key(1)).unwrap();
    net.sfu.leave(now, key(2)).unwrap();
    assert_eq!((net.sfu.peer_count(), net.sfu.room_count()), (0, 0));
}

#[test]
fn a_peer_whose_network_vanishes_is_removed_when_ice_consent_fails() {
    let mut net = three_party_call();
    net.cut.insert(3);
    net.run_until("the SFU gives up on p3", |n| {
        n.events
            .iter()
            .any(|e| matches!(e, SfuEvent::PeerFailed { peer } if *peer == key(3)))
    });
    assert_eq!(net.sfu.participants(ROOM), vec![ParticipantId(1), ParticipantId(2)]);
    assert_eq!(
        net.events
            .iter()
            .filter(|e| matches!(e, SfuEvent::TrackUnpublished { owner, .. } if *owner == ParticipantId(3)))
            .count(),
        2,
        "the others are told its tracks are gone"
    );
    for p in 1..=2 {
        assert_eq!(net.sfu.subscriptions(key(p)).len(), 2);
    }
}

#[test]
fn join_and_leave_churn_leaks_nothing() {
    let mut net = three_party_call();
    for round in 0..5u64 {
        let p = 10 + round;
        net.join(p);
        net.run_until("the newcomer connected", |n| n.clients[&p].is_connected());
        net.prime();
        net.run(20, Duration::from_millis(10));
        assert_eq!(net.sfu.subscriptions(key(p)).len(), 6);
        let now = net.now;
        net.sfu.leave(now, key(p)).unwrap();
        net.clients.remove(&p);
        net.run(20, Duration::from_millis(10));
        for q in 1..=3 {
            assert_eq!(net.sfu.subscriptions(key(q)).len(), 4, "round {round}: p{q}");
        }
    }
    assert_eq!(net.sfu.peer_count(), 3);
}

#[test]
fn malformed_datagrams_and_sdp_are_refused_without_harm() {
    let mut net = three_party_call();
    let now = net.now;
    let c1 = client_addr(1);
    let stranger: SocketAddr = "10.9.9.9:1234".parse().unwrap();
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x80],
        vec![0x80, 0x60, 0x00],                               // truncated RTP
        vec![0x80, 0xc8, 0x00, 0x06, 1, 2, 3, 4],             // truncated RTCP sender report
        vec![0x81, 0xc9, 0xff, 0xff],                         // RTCP with a length far beyond the datagram
        [0x90u8; 1500].to_vec(),                              // RTP with a bogus extension header
        vec![0x16, 0xfe, 0xfd, 0, 0],                         // truncated DTLS record
        vec![0x00, 0x01, 0x00, 0x50, 0x21, 0x12, 0xa4, 0x42], // STUN header, no body
        (0..=255u8).collect(),
    ];
    for datagram in &garbage {
        assert!(
            net.sfu.handle_datagram(now, stranger, datagram).is_err(),
            "unknown source"
        );
        let _ = net.sfu.handle_datagram(now, c1, datagram);
    }
    assert!(net.sfu.stats().dropped_datagrams >= garbage.len() as u64);

    // SDP: too large, not SDP, and SDP that is not an offer the SFU can accept.
    let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(10_000));
    assert!(matches!(
        net.sfu.handle_offer(now, key(1), huge, &[]),
        Err(SfuError::SdpTooLarge { .. })
    ));
    for bad in [
        "",
        "hello",
        "v=0\r\nm=audio\r\n",
        "v=0\r\no=- 0 0 IN IP4 0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
    ] {
        assert!(
            net.sfu.handle_offer(now, key(1), bad.to_owned(), &[]).is_err(),
            "{bad:?} must be refused"
        );
    }
    assert!(matches!(
        net.sfu.handle_answer(now, key(1), 999, "v=0\r\n".into()),
        Err(SfuError::Negotiation(_))
    ));
    assert!(
        net.sfu.handle_offer(now, key(42), "v=0".into(), &[]).is_err(),
        "not in the room"
    );

    // The call goes on undisturbed.
    let before = net.received(2, 1, "video").len();
    net.send_media(5);
    net.run(10, Duration::from_millis(10));
    assert_eq!(net.received(2, 1, "video").len(), before + 5);
}

#[test]
fn the_loudest_participant_becomes_the_active_speaker() {
    let mut net = three_party_call();
    for frame in 0..40usize {
        for p in 1..=3u64 {
            let level = if p == 2 { 10 } else { 120 };
            let now = net.now;
            let client = net.clients.get_mut(&p).unwrap();
            client
                .send_audio_with_level(now, level, audio_payload(p, frame))
                .unwrap();
        }
        net.run(1, Duration::from_millis(20));
    }
    let speakers: Vec<_> = net
        .events
        .iter()
        .filter_map(|e| match e {
            SfuEvent::Speaker { participant, .. } => Some(*participant),
            _ => None,
        })
        .collect();
    assert_eq!(speakers, vec![Some(ParticipantId(2))]);
}

#[test]
fn a_full_room_refuses_the_next_participant() {
    let mut config = SfuConfig::new(SFU_ADDR.parse().unwrap());
    config.room.max_participants = 2;
    let mut sfu = Sfu::new(config).unwrap();
    let now = Instant::now();
    sfu.join(now, key(1)).unwrap();
    sfu.join(now, key(2)).unwrap();
    assert_eq!(sfu.join(now, key(3)), Err(SfuError::RoomFull { max: 2 }));
    assert_eq!(sfu.join(now, key(1)), Err(SfuError::AlreadyJoined(ParticipantId(1))));
}

#[test]
fn lost_handshake_records_are_retransmitted() {
    for lost in 1..=4 {
        let mut net = Net::new();
        net.drop_dtls = lost;
        net.join(1);
        net.run_until("a connection despite lost DTLS records", Net::all_connected);
        assert_eq!(net.drop_dtls, 0, "{lost} records were dropped");
    }
}

/// Participant 1 publishes simulcast video; 2 and 3 receive it.
fn simulcast_call() -> Net {
    let mut net = Net::new();
    net.join_with(1, |c| c.simulcast = true);
    net.join(2);
    net.join(3);
    net.run_until("everyone connected", Net::all_connected);
    net
}

/// Participant 1 sending all three layers at 30 frames a second, with a keyframe on the first
/// frame, on every keyframe request, and every `key_every` frames if set.
struct SimulcastPublisher {
    frame: usize,
    requests_seen: u64,
    key_every: Option<usize>,
}

impl SimulcastPublisher {
    fn new(key_every: Option<usize>) -> Self {
        Self {
            frame: 0,
            requests_seen: 0,
            key_every,
        }
    }

    fn send(&mut self, net: &mut Net, frames: usize) {
        for _ in 0..frames {
            let requested = net.clients[&1].keyframe_requests();
            let periodic = self.key_every.is_some_and(|n| self.frame.is_multiple_of(n));
            let key = self.frame == 0 || periodic || requested > self.requests_seen;
            self.requests_seen = requested;
            let now = net.now;
            let publisher = net.clients.get_mut(&1).unwrap();
            for layer in 0..3 {
                publisher
                    .send_layer(now, layer, layer_frame(layer, self.frame, key))
                    .unwrap();
            }
            self.frame += 1;
            net.run(1, Duration::from_millis(33));
        }
    }
}

/// A simulcast VP8 frame: key or inter, naming its layer and number.
fn layer_frame(layer: usize, frame: usize, key: bool) -> Bytes {
    let mut payload = vec![0x10, if key { 0x00 } else { 0x01 }];
    payload.extend_from_slice(format!("L{layer} #{frame}").as_bytes());
    Bytes::from(payload)
}

#[test]
fn simulcast_layers_follow_what_each_subscriber_asks_for() {
    let mut net = simulcast_call();

    // The publisher sends all three layers; it answers a keyframe request with keyframes.
    let mut publisher = SimulcastPublisher::new(None);
    let mut send_frames = |net: &mut Net, frames: usize| publisher.send(net, frames);
    send_frames(&mut net, 10);
    let track = net
        .events
        .iter()
        .find_map(|e| match e {
            SfuEvent::TrackPublished { owner, kind, track, .. }
                if *owner == ParticipantId(1) && *kind == TrackKind::Video =>
            {
                Some(*track)
            }
            _ => None,
        })
        .expect("the simulcast track is published once");
    let layers_of = |net: &Net, p: u64| -> Vec<u8> {
        net.clients[&p]
            .remote_tracks()
            .values()
            .filter(|t| t.stream_id == "p1" && t.kind == "video")
            .flat_map(|t| t.payloads.iter().map(|b| b[3]))
            .collect()
    };
    // By default both subscribers get the highest layer (after the lower ones while the
    // higher were not yet known), one layer at a time, moving up only.
    for p in [2, 3] {
        let got = layers_of(&net, p);
        assert!(
            got.len() >= 8 && got[got.len() - 5..].iter().all(|l| *l == b'2'),
            "p{p}: {got:?}"
        );
        assert!(got.windows(2).all(|w| w[0] <= w[1]), "p{p}: {got:?}");
    }

    // Subscriber 2 asks for the lowest layer (a thumbnail): the SFU asks the publisher for a
    // keyframe and switches on it; subscriber 3 keeps the highest.
    let before = (layers_of(&net, 2).len(), layers_of(&net, 3).len());
    let now = net.now;
    net.sfu.set_layer(now, key(2), track, Layer::Low).unwrap();
    send_frames(&mut net, 10);
    let after_2 = &layers_of(&net, 2)[before.0..];
    let after_3 = &layers_of(&net, 3)[before.1..];
    let switched_at = after_2
        .iter()
        .position(|l| *l == b'0')
        .expect("p2 switched to the low layer");
    assert!(after_2[switched_at..].iter().all(|l| *l == b'0'), "{after_2:?}");
    assert!(
        after_2[..switched_at].iter().all(|l| *l == b'2'),
        "the old layer until the keyframe"
    );
    assert!(after_3.iter().all(|l| *l == b'2'), "{after_3:?}");
    assert!(net.sfu.stats().layer_switches >= 1);

    // One continuous stream for the subscriber: sequence numbers never jump at the switch.
    let seqs: Vec<u16> = net.clients[&2]
        .remote_tracks()
        .values()
        .filter(|t| t.stream_id == "p1" && t.kind == "video")
        .flat_map(|t| t.sequence_numbers.clone())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "{seqs:?}");
    assert_eq!(
        net.sfu.set_layer(now, key(2), TrackId(999), Layer::High),
        Err(SfuError::UnknownTrack(TrackId(999)))
    );
}

#[test]
fn a_screen_share_is_a_second_video_track() {
    let mut net = Net::new();
    net.join_with(1, |c| c.screen = true);
    net.join(2);
    net.run_until("everyone connected", Net::all_connected);
    net.prime();
    // The first packet announces the track; the subscriber gets packets once it has
    // answered the offer that describes it, so the second one reaches it.
    for _ in 0..2 {
        let now = net.now;
        net.clients
            .get_mut(&1)
            .unwrap()
            .send(now, MediaKind::Screen, Bytes::from_static(&[0x10, 0x00, b's', b'1']))
            .unwrap();
        net.run(30, Duration::from_millis(10));
    }
    let published: Vec<(TrackKind, TrackSource)> = net
        .events
        .iter()
        .filter_map(|e| match e {
            SfuEvent::TrackPublished {
                owner, kind, source, ..
            } if *owner == ParticipantId(1) => Some((*kind, *source)),
            _ => None,
        })
        .collect();
    assert_eq!(published.len(), 3, "{published:?}");
    assert!(published.contains(&(TrackKind::Screen, TrackSource::Screen)));
    assert!(published.contains(&(TrackKind::Video, TrackSource::Camera)));
    let screen_track = net.track_of(1, TrackKind::Screen);
    let received = &net.clients[&2].remote_tracks()[&screen_track];
    assert_eq!(received.kind, "video");
    assert_eq!(
        received.payloads.last().map(|b| b.as_ref()),
        Some(&[0x10, 0x00, b's', b'1'][..])
    );
    assert_eq!(net.sfu.subscriptions(key(2)).len(), 3);
}

#[test]
fn vp9_and_h264_are_forwarded_when_the_clients_offer_only_them() {
    for (codec, keyframe) in [
        (VideoCodecChoice::Vp9, vec![0x08u8, b'k']),
        (VideoCodecChoice::H264, vec![0x65u8, b'k']),
    ] {
        let mut net = Net::new();
        net.join_with(1, |c| c.video_codec = codec);
        net.join_with(2, |c| c.video_codec = codec);
        net.run_until("everyone connected", Net::all_connected);
        for frame in 0..5u8 {
            let now = net.now;
            for p in [1, 2] {
                let mut payload = keyframe.clone();
                payload.push(frame);
                payload.push(p as u8);
                net.clients
                    .get_mut(&p)
                    .unwrap()
                    .send(now, MediaKind::Video, Bytes::from(payload))
                    .unwrap();
            }
            net.run(3, Duration::from_millis(10));
        }
        for (to, from) in [(1u8, 2u8), (2, 1)] {
            let got: Vec<Vec<u8>> = net.clients[&u64::from(to)]
                .remote_tracks()
                .values()
                .filter(|t| t.kind == "video")
                .flat_map(|t| t.payloads.iter().map(|b| b.to_vec()))
                .collect();
            // Tracks publish on their first packet, so the first frame may not be forwarded yet.
            assert!(got.len() >= 3, "{codec:?} {from} -> {to}: {got:?}");
            assert!(
                got.iter().all(|p| p[..2] == keyframe[..] && p[3] == from),
                "{codec:?}: {got:?}"
            );
        }
    }
}

#[test]
fn the_answer_negotiates_feedback_for_loss_keyframes_and_congestion_control() {
    let now = Instant::now();
    let mut sfu = Sfu::new(SfuConfig::new(SFU_ADDR.parse().unwrap())).unwrap();
    let mut client = ClientPeer::new(now, ClientConfig::new(client_addr(1), "c1")).unwrap();
    sfu.join(now, key(1)).unwrap();
    let offer = client.create_offer(now).unwrap();
    let answer = sfu.handle_offer(now, key(1), offer, &[]).unwrap().answer.unwrap();
    for needle in [
        "a=rtcp-fb:96 nack",
        "a=rtcp-fb:96 nack pli",
        "a=rtcp-fb:96 transport-cc",
        "transport-wide-cc",
        "ssrc-audio-level",
        "a=ice-lite",
        &SFU_ADDR.replace(':', " "),
    ] {
        assert!(answer.contains(needle), "answer lacks {needle:?}:\n{answer}");
    }
}

#[test]
fn a_lossy_downlink_gets_a_lower_simulcast_layer() {
    let mut net = simulcast_call();
    // Subscriber 2 loses one datagram in three; subscriber 3 none.
    net.lossy.insert(2, 3);
    SimulcastPublisher::new(Some(60)).send(&mut net, 300);
    let last_layer = |net: &Net, p: u64| -> u8 {
        net.clients[&p]
            .remote_tracks()
            .values()
            .filter(|t| t.stream_id == "p1" && t.kind == "video")
            .flat_map(|t| t.payloads.last().map(|b| b[3]))
            .next()
            .expect("video received")
    };
    assert_eq!(last_layer(&net, 3), b'2', "the clean downlink keeps the top layer");
    assert!(last_layer(&net, 2) < b'2', "the lossy downlink was stepped down");
}

/// Bytes an SRTP packet carries past its RTP header and a payload of `payload_len`: the
/// authentication tag (AES-GCM: 16, AES-CM with HMAC-SHA1-80: 10).
fn srtp_overhead(packet: &[u8], payload_len: usize) -> usize {
    let mut header = 12 + 4 * usize::from(packet[0] & 0x0f);
    if packet[0] & 0x10 != 0 {
        header += 4 + 4 * usize::from(u16::from_be_bytes([packet[header + 2], packet[header + 3]]));
    }
    packet.len() - header - payload_len
}

#[test]
fn forwarded_media_leaves_with_the_datagram_that_brought_it_before_any_timer_runs() {
    let mut net = three_party_call();
    net.send_media(3);
    let count = |net: &Net, kind: &str| [2, 3].map(|p| net.received(p, 1, kind).len());
    let (audio, video) = (count(&net, "audio"), count(&net, "video"));
    // Client 1 sends one packet of each kind; the SFU's clock does not move, and no timer of
    // the SFU runs: the copies go out with the handling of the datagrams themselves.
    let now = net.now;
    let client = net.clients.get_mut(&1).unwrap();
    client.send(now, MediaKind::Audio, audio_payload(1, 100)).unwrap();
    client.send(now, MediaKind::Video, video_payload(1, 100)).unwrap();
    if client.poll_timeout().is_some_and(|at| at <= now) {
        client.handle_timeout(now);
    }
    net.pump();
    assert_eq!(count(&net, "audio"), audio.map(|n| n + 1), "audio waited for a timer");
    assert_eq!(
        count(&net, "video"),
        video.map(|n| n + 1),
        "uncongested video waited for a timer"
    );
}

#[test]
fn srtp_is_aes_gcm_where_the_peer_offers_it_and_aes_cm_where_it_does_not() {
    let mut net = Net::new();
    net.join(1);
    net.join(2);
    net.join_with(3, |c| c.aes_cm_srtp_only = true);
    net.join_with(4, |c| c.aes_cm_srtp_first = true);
    net.run_until("everyone connected", Net::all_connected);
    net.prime();
    net.run(60, Duration::from_millis(10));
    net.send_media(2);
    net.rtp_to.clear();
    let payload = audio_payload(1, 7);
    let now = net.now;
    let client = net.clients.get_mut(&1).unwrap();
    client.send(now, MediaKind::Audio, payload.clone()).unwrap();
    net.run(2, Duration::from_millis(10));
    let overhead = |to: u64| {
        let copies: Vec<usize> = net
            .rtp_to
            .iter()
            .filter(|(p, packet)| *p == to && packet.len() > payload.len() + 12)
            .map(|(_, packet)| srtp_overhead(packet, payload.len()))
            .collect();
        assert_eq!(copies.len(), 1, "one copy of the audio packet to {to}: {copies:?}");
        copies[0]
    };
    assert_eq!(overhead(2), 16, "a peer offering AES-GCM gets AES-GCM's 16-byte tag");
    assert_eq!(
        overhead(3),
        10,
        "a peer with AES-CM only gets HMAC-SHA1-80's 10-byte tag"
    );
    assert_eq!(
        overhead(4),
        16,
        "a peer listing AES-CM first (as Chromium does) still gets AES-GCM: the SFU answers as \
         the DTLS server, and the server's preference decides"
    );
    for peer in [2, 3, 4] {
        assert_eq!(net.received(peer, 1, "audio").last(), Some(&payload), "peer {peer}");
    }
}

#[test]
fn a_replayed_srtp_packet_is_not_forwarded_again() {
    let mut net = three_party_call();
    net.send_media(3);
    net.run(10, Duration::from_millis(10));
    let captured = net.last_rtp[&1].clone();
    let before: usize = [2, 3]
        .iter()
        .map(|p| net.received(*p, 1, "video").len() + net.received(*p, 1, "audio").len())
        .sum();
    let forwarded = net.sfu.stats().forwarded_packets;
    for _ in 0..5 {
        let now = net.now;
        let _ = net.sfu.handle_datagram(now, client_addr(1), &captured);
        net.run(1, Duration::from_millis(10));
    }
    let after: usize = [2, 3]
        .iter()
        .map(|p| net.received(*p, 1, "video").len() + net.received(*p, 1, "audio").len())
        .sum();
    assert_eq!((after, net.sfu.stats().forwarded_packets), (before, forwarded));
    // A captured packet sent from another address is not accepted either.
    let now = net.now;
    assert!(
        net.sfu
            .handle_datagram(now, "10.0.1.99:6000".parse().unwrap(), &captured)
            .is_err()
    );
}

#[test]
fn a_subscriber_gets_no_rtp_of_a_track_before_answering_for_it_and_every_packet_names_its_mid() {
    let mut net = two_party_call_with_media();
    let known = ssrcs_in(&net.sfu_sdp[&1]);
    // A third joins while the first holds the SFU's offer that describes the newcomer's tracks.
    net.hold_offers.insert(1);
    net.join(3);
    net.run_until("p3 connected", |n| n.clients[&3].is_connected());
    net.prime();
    net.run_until("an offer to p1 naming p3's tracks", |n| !n.held.is_empty());
    let (_, offer_id, held) = net.held.pop().unwrap();
    let new: HashSet<u32> = ssrcs_in(&held).difference(&known).copied().collect();
    assert!(!new.is_empty(), "the held offer names a track of p3");
    net.rtp_to.clear();
    net.send_media(5);
    // Nothing but the tracks p1 has answered for: no packet it could not place.
    let early: Vec<u32> = net
        .rtp_to
        .iter()
        .filter(|(p, _)| *p == 1)
        .map(|(_, d)| rtp_header(d).0)
        .filter(|ssrc| !known.contains(ssrc))
        .collect();
    assert!(
        early.is_empty(),
        "p1 got {} packets of tracks it had not answered for",
        early.len()
    );

    // Answered: the tracks flow, and from the first packet each names the m-line it belongs to.
    net.hold_offers.clear();
    net.follow_up(1, Some((offer_id, held)));
    net.rtp_to.clear();
    net.send_media(5);
    assert!(
        net.rtp_to
            .iter()
            .any(|(p, d)| *p == 1 && new.contains(&rtp_header(d).0)),
        "p3's tracks never reached p1 after its answer"
    );
    let mut checked = 0;
    for (p, datagram) in &net.rtp_to {
        let (ssrc, extensions) = rtp_header(datagram);
        let (mid, ext) = section_of(&net.sfu_sdp[p], ssrc)
            .unwrap_or_else(|| panic!("p{p} got SSRC {ssrc}, which its SDP does not announce"));
        let ext = ext.unwrap_or_else(|| panic!("p{p}'s m-line {mid} negotiates no MID extension"));
        let carried = extensions.iter().find(|(id, _)| *id == ext).map(|(_, v)| v.as_slice());
        assert_eq!(
            carried,
            Some(mid.as_bytes()),
            "p{p}: a packet of m-line {mid} without its MID"
        );
        checked += 1;
    }
    assert!(checked > 20, "{checked} packets checked");
    assert!(net.received(3, 1, "video").len() > 3 && net.received(1, 3, "audio").len() > 3);
}

#[test]
fn a_new_subscribers_first_keyframe_is_asked_for_once_it_can_receive_and_skips_the_throttle() {
    let mut net = two_party_call_with_media();
    net.run(60, Duration::from_millis(10));
    // p2 asks for a keyframe of p1's video: the throttle now holds further requests ~500 ms.
    let video_of_1 = net.track_of(1, TrackKind::Video);
    net.request_keyframe(2, &video_of_1);
    net.run(1, Duration::from_millis(10));
    let before = net.clients[&1].keyframe_requests();
    assert!(before > 0);

    net.join(3);
    let connected = |n: &Net| {
        n.events
            .iter()
            .any(|e| matches!(e, SfuEvent::Connected { peer } if *peer == key(3)))
    };
    let mut steps = 0;
    while !connected(&net) {
        // Not before it can receive: a keyframe now would be lost.
        assert_eq!(
            net.clients[&1].keyframe_requests(),
            before,
            "asked before p3 could receive"
        );
        net.run(1, Duration::from_millis(10));
        steps += 1;
        assert!(steps < 300, "p3 never connected");
    }
    eprintln!("p3 connected after {steps} steps of 10 ms");
    assert_eq!(
        net.clients[&1].keyframe_requests(),
        before + 1,
        "p3's first keyframe is asked for as it connects, not after the throttle"
    );
    let at = net.now;
    let now = net.now;
    net.clients
        .get_mut(&1)
        .unwrap()
        .send(now, MediaKind::Video, video_payload(1, 0))
        .unwrap();
    net.run(2, Duration::from_millis(10));
    let got = net.received(3, 1, "video");
    assert_eq!(
        got.first(),
        Some(&video_payload(1, 0)),
        "p3's first picture is the keyframe"
    );
    assert!(net.now - at < Duration::from_millis(100));
    assert!(
        net.events
            .iter()
            .any(|e| matches!(e, SfuEvent::FirstKeyframe { peer, .. } if *peer == key(3))),
        "the set-up time of p3's subscription is reported"
    );
}

#[test]
fn as_an_ice_lite_agent_the_sfu_answers_the_first_nominating_check_at_once_and_sends_none() {
    let net = three_party_call();
    let from_sfu: Vec<&Stun> = net.stun.iter().filter(|(_, _, sfu, _)| *sfu).map(|(.., m)| m).collect();
    assert!(!from_sfu.is_empty(), "the SFU answered checks");
    assert!(
        from_sfu.iter().all(|m| m.kind != Stun::BINDING_REQUEST),
        "the SFU sent {} connectivity checks of its own",
        from_sfu.iter().filter(|m| m.kind == Stun::BINDING_REQUEST).count()
    );
    for p in 1..=3 {
        let (at, first) = net
            .stun
            .iter()
            .find(|(_, c, sfu, m)| *c == p && !sfu && m.kind == Stun::BINDING_REQUEST && m.nominates)
            .map(|(at, _, _, m)| (*at, m.transaction))
            .unwrap_or_else(|| panic!("p{p} never nominated"));
        let answered = net
            .stun
            .iter()
            .find(|(_, c, sfu, m)| *c == p && *sfu && m.kind == Stun::BINDING_SUCCESS && m.transaction == first)
            .map(|(when, ..)| *when);
        assert_eq!(
            answered,
            Some(at),
            "p{p}'s first nomination is answered in the same instant"
        );
    }
}

/// Warnings logged on the thread that installed [`warnings_on_this_thread`]'s capture.
static WARNINGS: std::sync::Mutex<Vec<(std::thread::ThreadId, String)>> = std::sync::Mutex::new(Vec::new());

struct CaptureWarnings;

impl log::Log for CaptureWarnings {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {}: {}", record.level(), record.target(), record.args());
            WARNINGS.lock().unwrap().push((std::thread::current().id(), line));
        }
    }

    fn flush(&self) {}
}

/// The warnings (and errors) logged on this thread from the first call on.
fn warnings_on_this_thread() -> Vec<String> {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        log::set_logger(&CaptureWarnings).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Warn);
    });
    let me = std::thread::current().id();
    WARNINGS
        .lock()
        .unwrap()
        .iter()
        .filter(|(thread, _)| *thread == me)
        .map(|(_, line)| line.clone())
        .collect()
}

#[test]
fn a_normal_call_logs_no_warning_per_peer() {
    assert!(warnings_on_this_thread().is_empty());
    let mut net = three_party_call();
    net.send_media(10);
    net.run(50, Duration::from_millis(20));
    let warnings = warnings_on_this_thread();
    assert!(warnings.is_empty(), "{warnings:#?}");
}
