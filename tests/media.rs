//! Whole-server media: real webrtc-rs peers (`huddle_sfu::client`, each on its own UDP socket)
//! signal over Socket.IO (the official `socket.io-client`) and exchange RTP through the SFU.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::sio::SioClient;
use common::{Session, TestServer, group_with, socket};
use huddle_sfu::client::{ClientConfig, ClientPeer, MediaKind};
use mongodb::bson::oid::ObjectId;
use serde_json::{Value, json};
use tokio::net::UdpSocket;

/// A call participant: its socket, its WebRTC connection and the UDP socket under it.
struct Peer {
    user_id: String,
    sio: SioClient,
    rtc: ClientPeer,
    udp: UdpSocket,
    call: String,
    /// `track:published` events received: track id -> event.
    published: HashMap<String, Value>,
    /// When this peer's answer naming each remote track (by its `msid` track id) was sent.
    answered: HashMap<String, Instant>,
    /// Each remote track's first payload, and when it arrived.
    first_packet: HashMap<String, (Instant, Bytes)>,
    /// Keyframe requests already answered (with a keyframe, as an encoder does).
    keyframes_given: u64,
}

impl Peer {
    async fn new(session: &Session, sio: SioClient, call: &str) -> Self {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let config = ClientConfig::new(udp.local_addr().unwrap(), session.user_id.clone());
        Self {
            user_id: session.user_id.clone(),
            sio,
            rtc: ClientPeer::new(Instant::now(), config).unwrap(),
            udp,
            call: call.to_string(),
            published: HashMap::new(),
            answered: HashMap::new(),
            first_packet: HashMap::new(),
            keyframes_given: 0,
        }
    }

    /// Offers the microphone and camera tracks and applies the SFU's answer.
    async fn publish(&mut self) {
        let sdp = self.rtc.create_offer(Instant::now()).unwrap();
        let sources = json!([
            { "trackId": self.rtc.track_id(MediaKind::Audio), "source": "microphone" },
            { "trackId": self.rtc.track_id(MediaKind::Video), "source": "camera" },
        ]);
        let ack = self
            .sio
            .emit(
                "rtc:offer",
                json!({ "callId": self.call, "sdp": sdp, "sources": sources }),
            )
            .await;
        let data = ack.get("data").unwrap_or_else(|| panic!("rtc:offer refused: {ack}"));
        self.rtc
            .apply_answer(Instant::now(), data["sdp"].as_str().unwrap().to_string())
            .unwrap();
        self.follow(data.get("offer").cloned()).await;
    }

    /// Answers the SFU's offers, including those that come in the ack of an answer.
    async fn follow(&mut self, mut offer: Option<Value>) {
        while let Some(o) = offer.take() {
            let sdp = o["sdp"].as_str().unwrap().to_string();
            let Some(answer) = self.rtc.apply_offer(Instant::now(), sdp.clone()).unwrap() else {
                return;
            };
            let sent = Instant::now();
            let ack = self
                .sio
                .emit(
                    "rtc:answer",
                    json!({ "callId": self.call, "sdp": answer, "offerId": o["offerId"] }),
                )
                .await;
            for line in sdp.lines() {
                if let Some(track) = line.strip_prefix("a=msid:").and_then(|m| m.split_whitespace().nth(1)) {
                    self.answered.entry(track.to_string()).or_insert(sent);
                }
            }
            offer = ack.get("data").and_then(|d| d.get("offer")).cloned();
        }
    }

    /// Moves datagrams, timers and signaling once, without waiting.
    async fn step(&mut self) {
        let local = self.udp.local_addr().unwrap();
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.udp.try_recv_from(&mut buf) {
            self.rtc.handle_datagram(Instant::now(), from, local, &buf[..n]);
        }
        let now = Instant::now();
        if self.rtc.poll_timeout().is_some_and(|at| at <= now) {
            self.rtc.handle_timeout(now);
        }
        while let Some((_, to, payload)) = self.rtc.poll_transmit() {
            let _ = self.udp.send_to(&payload, to).await;
        }
        for (track, remote) in self.rtc.remote_tracks() {
            if let Some(first) = remote.payloads.first()
                && !self.first_packet.contains_key(track)
            {
                self.first_packet.insert(track.clone(), (Instant::now(), first.clone()));
            }
        }
        for offer in self.sio.take_all("rtc:offer") {
            self.follow(Some(offer)).await;
        }
        for event in self.sio.take_all("track:published") {
            self.published
                .insert(event["trackId"].as_str().unwrap().to_string(), event);
        }
    }

    fn send(&mut self, frame: usize) {
        let now = Instant::now();
        let tag = &self.user_id;
        self.rtc
            .send(now, MediaKind::Audio, Bytes::from(format!("opus {tag} #{frame}")))
            .unwrap();
        // A keyframe first, and whenever the SFU asked for one since the last.
        let asked = self.rtc.keyframe_requests();
        let key = frame == 0 || asked > self.keyframes_given;
        self.keyframes_given = asked;
        let mut vp8 = vec![0x10, if key { 0x00 } else { 0x01 }];
        vp8.extend_from_slice(format!("vp8 {tag} #{frame}").as_bytes());
        self.rtc.send(now, MediaKind::Video, Bytes::from(vp8)).unwrap();
    }

    /// The payloads received from `from`'s track of `kind` (as `track:published` named it).
    fn received_from(&self, from: &str, kind: &str) -> Vec<Bytes> {
        let Some((track_id, _)) = self
            .published
            .iter()
            .find(|(_, e)| e["userId"] == from && e["kind"] == kind)
        else {
            return Vec::new();
        };
        self.rtc
            .remote_tracks()
            .get(track_id)
            .map(|t| t.payloads.clone())
            .unwrap_or_default()
    }
}

/// Payloads with the VP8 key/inter flag cleared: which frames the SFU's keyframe requests
/// made keyframes does not matter to what arrived.
fn as_sent(payloads: Vec<Bytes>) -> Vec<Bytes> {
    payloads
        .into_iter()
        .map(|b| match b.as_ref() {
            [0x10, 0x00, rest @ ..] => {
                let mut inter = vec![0x10, 0x01];
                inter.extend_from_slice(rest);
                Bytes::from(inter)
            }
            _ => b,
        })
        .collect()
}

/// Steps every peer until `done` holds; panics after 30 s naming `what`.
async fn pump(peers: &mut [Peer], what: &str, done: impl Fn(&[Peer]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(peers) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        for peer in peers.iter_mut() {
            peer.step().await;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn start_group_call(server: &TestServer, people: &[&Session], chat: &str) -> (String, Vec<SioClient>) {
    let mut sockets = Vec::new();
    for who in people {
        sockets.push(socket(server, who).await);
    }
    let ack = sockets[0]
        .emit("call:start", json!({ "chatId": chat, "type": "video" }))
        .await;
    let call = ack["data"]["_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{ack}"))
        .to_string();
    for s in sockets.iter_mut().skip(1) {
        s.next("call:incoming").await;
        let ack = s.emit("call:accept", json!({ "callId": call })).await;
        assert!(ack.get("data").is_some(), "{ack}");
        let ack = s.emit("call:join", json!({ "callId": call })).await;
        assert!(ack.get("data").is_some(), "{ack}");
    }
    (call, sockets)
}

/// A group call everyone joined, each with a connected peer publishing audio and video.
async fn connected_call(server: &TestServer, people: &[&Session], chat: &str) -> (String, Vec<Peer>) {
    let (call, sockets) = start_group_call(server, people, chat).await;
    let mut peers = Vec::new();
    for (who, sio) in people.iter().zip(sockets) {
        peers.push(Peer::new(who, sio, &call).await);
    }
    for peer in &mut peers {
        peer.publish().await;
    }
    pump(&mut peers, "every peer connected", |ps| {
        ps.iter().all(|p| p.rtc.is_connected())
    })
    .await;
    (call, peers)
}

#[tokio::test]
async fn three_webrtc_peers_exchange_opus_and_vp8_through_the_sfu() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let cy = server.signed_up("cyd").await;
    let (_, chat) = group_with(&ada, "Standup", &[&bob, &cy]).await;
    let people = [&ada, &bob, &cy];
    let (call, mut peers) = connected_call(&server, &people, &chat).await;

    // Tracks are published with their first packet; keep a trickle of frames going until each
    // peer has been told of, and receives, the other two's audio and video.
    let mut frame = 0;
    pump_with_media(&mut peers, &mut frame, |ps| {
        ps.iter().all(|p| {
            p.published.len() == 4
                && ps.iter().filter(|o| o.user_id != p.user_id).all(|o| {
                    !p.received_from(&o.user_id, "audio").is_empty() && !p.received_from(&o.user_id, "video").is_empty()
                })
        })
    })
    .await;
    for p in &peers {
        for event in p.published.values() {
            assert_eq!(event["callId"], call.as_str());
            assert_ne!(
                event["userId"],
                p.user_id.as_str(),
                "nobody is told of their own tracks"
            );
            let expected = if event["kind"] == "audio" {
                "microphone"
            } else {
                "camera"
            };
            assert_eq!(event["source"], expected, "{event}");
        }
    }

    // A subscriber may ask for a lower layer of a track it receives (not of one it does not),
    // and trickle its end of candidates.
    let bob_video = peers[0]
        .published
        .iter()
        .find(|(_, e)| e["userId"] == peers[1].user_id.as_str() && e["kind"] == "video")
        .map(|(id, _)| id.clone())
        .unwrap();
    let layer = |track: &str| json!({ "callId": call, "trackId": track, "layer": "low" });
    let ack = peers[0].sio.emit("rtc:layer", layer(&bob_video)).await;
    assert_eq!(ack["data"], json!({}), "{ack}");
    let ack = peers[0].sio.emit("rtc:layer", layer("t999")).await;
    assert_eq!(ack["error"]["code"], "unknown_track", "{ack}");
    let ack = peers[0]
        .sio
        .emit("rtc:candidate", json!({ "callId": call, "candidate": "" }))
        .await;
    assert_eq!(ack["data"], json!({}), "{ack}");
    let ack = peers[0]
        .sio
        .emit(
            "rtc:candidate",
            json!({ "callId": call, "candidate": "candidate:garbage" }),
        )
        .await;
    assert_eq!(ack["error"]["code"], "negotiation_failed", "{ack}");

    // Now a known run of frames: every byte must arrive, from the right sender, on the right
    // track, at both other peers.
    let first = frame;
    for f in first..first + 50 {
        for p in &mut peers {
            p.send(f);
        }
        for p in &mut peers {
            p.step().await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let expected = |user: &str, kind: &str| -> Vec<Bytes> {
        (first..first + 50)
            .map(|f| {
                if kind == "audio" {
                    Bytes::from(format!("opus {user} #{f}"))
                } else {
                    let mut vp8 = vec![0x10, 0x01];
                    vp8.extend_from_slice(format!("vp8 {user} #{f}").as_bytes());
                    Bytes::from(vp8)
                }
            })
            .collect()
    };
    pump(&mut peers, "the 50 frames everywhere", |ps| {
        ps.iter().all(|p| {
            ps.iter().filter(|o| o.user_id != p.user_id).all(|o| {
                ["audio", "video"].iter().all(|kind| {
                    let got = as_sent(p.received_from(&o.user_id, kind));
                    expected(&o.user_id, kind).iter().all(|e| got.contains(e))
                })
            })
        })
    })
    .await;
    for p in &peers {
        for o in peers.iter().filter(|o| o.user_id != p.user_id) {
            for kind in ["audio", "video"] {
                let got: Vec<Bytes> = as_sent(p.received_from(&o.user_id, kind))
                    .into_iter()
                    .filter(|b| expected(&o.user_id, kind).contains(b))
                    .collect();
                assert_eq!(got, expected(&o.user_id, kind), "{kind} {} -> {}", o.user_id, p.user_id);
            }
        }
    }
    let stats = server.state.sfu.stats().await.unwrap();
    assert_eq!((stats.rooms, stats.peers), (1, 3));
    assert!(stats.forwarded_packets >= 3 * 2 * 2 * 50, "{stats:?}");

    // Bob talks (loud audio levels) while the others are silent: everyone hears who speaks.
    let bob_user = peers[1].user_id.clone();
    for f in 0..40 {
        for (i, p) in peers.iter_mut().enumerate() {
            let level = if i == 1 { 10 } else { 127 };
            p.rtc
                .send_audio_with_level(Instant::now(), level, Bytes::from(format!("level #{f}")))
                .unwrap();
            p.step().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for p in peers.iter_mut() {
        let speaker = p.sio.next("call:speaker").await;
        assert_eq!(speaker, json!({ "callId": call, "userId": bob_user }));
    }
    // Mute state goes to the others.
    let ack = peers[0]
        .sio
        .emit(
            "participant:mute",
            json!({ "callId": call, "source": "microphone", "muted": true }),
        )
        .await;
    assert!(ack.get("data").is_some(), "{ack}");
    let ada_user = peers[0].user_id.clone();
    for p in peers.iter_mut().skip(1) {
        let muted = p.sio.next("participant:muted").await;
        assert_eq!(
            muted,
            json!({ "callId": call, "userId": ada_user, "source": "microphone", "muted": true })
        );
    }

    // Cy hangs up: the others are told its tracks are gone.
    let cy_user = peers[2].user_id.clone();
    let ack = peers[2].sio.emit("call:leave", json!({ "callId": call })).await;
    assert!(ack.get("data").is_some(), "{ack}");
    for p in peers.iter_mut().take(2) {
        let mut gone = Vec::new();
        for _ in 0..2 {
            let event = p.sio.next("track:unpublished").await;
            assert_eq!(event["userId"], cy_user.as_str());
            gone.push(event["kind"].as_str().unwrap().to_string());
        }
        gone.sort();
        assert_eq!(gone, ["audio", "video"]);
    }
    for p in peers.iter_mut().take(2) {
        let ack = p.sio.emit("call:leave", json!({ "callId": call })).await;
        assert!(ack.get("data").is_some(), "{ack}");
    }
    let stats = server.state.sfu.stats().await.unwrap();
    assert_eq!(
        (stats.rooms, stats.peers),
        (0, 0),
        "every connection closed with the call"
    );

    // The Call document in MongoDB names the three participants, the start and the end.
    let stored = server
        .state
        .store
        .calls
        .by_id(ObjectId::parse_str(&call).unwrap())
        .await
        .unwrap()
        .expect("call document");
    let mut participants: Vec<String> = stored.participants.iter().map(|p| p.to_hex()).collect();
    participants.sort();
    let mut expected_ids: Vec<String> = people.iter().map(|p| p.user_id.clone()).collect();
    expected_ids.sort();
    assert_eq!(participants, expected_ids);
    let ended = stored.ended_at.expect("end time");
    assert!(ended >= stored.started_at);
    assert_eq!(stored.status, huddle_signaling::CallStatus::Ended);
    server.stop().await;
}

#[tokio::test]
async fn media_signaling_is_for_participants_only() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let eve = server.signed_up("eve").await;
    let (_, chat) = group_with(&ada, "Pair", &[&bob]).await;
    let mut ada_socket = socket(&server, &ada).await;
    let mut bob_socket = socket(&server, &bob).await;
    let mut eve_socket = socket(&server, &eve).await;
    let ack = ada_socket
        .emit("call:start", json!({ "chatId": chat, "type": "audio" }))
        .await;
    let call = ack["data"]["_id"].as_str().unwrap().to_string();
    let offer = json!({ "callId": call, "sdp": "v=0\r\n" });

    // An outsider and a member who has not joined are both told there is no such call.
    for s in [&mut eve_socket, &mut bob_socket] {
        let ack = s.emit("rtc:offer", offer.clone()).await;
        assert_eq!(ack["error"]["code"], "not_found", "{ack}");
    }
    // Bad payloads are refused before anything else looks at them.
    let huge = json!({ "callId": call, "sdp": format!("v=0\r\n{}", "a".repeat(20_000)) });
    let ack = ada_socket.emit("rtc:offer", huge).await;
    assert_eq!(ack["error"]["code"], "sdp_too_large", "{ack}");
    let ack = ada_socket
        .emit("rtc:offer", json!({ "callId": call, "sdp": "v=0", "role": "admin" }))
        .await;
    assert_eq!(ack["error"]["code"], "bad_request", "{ack}");
    let ack = ada_socket
        .emit("rtc:offer", json!({ "callId": call, "sdp": "v=0\r\nnot sdp" }))
        .await;
    assert_eq!(ack["error"]["code"], "negotiation_failed", "{ack}");
    let ack = ada_socket
        .emit("rtc:answer", json!({ "callId": call, "sdp": "v=0\r\n", "offerId": 7 }))
        .await;
    assert!(ack.get("error").is_some(), "{ack}");
    server.stop().await;
}

#[tokio::test]
async fn a_participant_whose_network_vanishes_leaves_the_call() {
    let server = TestServer::start_with(|c| c.call_media_timeout_secs = 3).await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let cyd = server.signed_up("cyd").await;
    let (_, chat) = group_with(&ada, "Trio", &[&bob, &cyd]).await;
    let people = [&ada, &bob, &cyd];
    let (_, mut peers) = connected_call(&server, &people, &chat).await;
    let mut frame = 0;
    pump_with_media(&mut peers, &mut frame, |ps| ps.iter().all(|p| p.published.len() == 4)).await;

    // Cyd's machine drops off the network: its peer stops answering, its socket stays open.
    let gone = peers.pop().unwrap();
    let gone_user = gone.user_id.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut left = Vec::new();
    while left.len() < 2 {
        assert!(Instant::now() < deadline, "the others were never told");
        for p in &mut peers {
            p.step().await;
            for event in p.sio.take_all("call:participant-left") {
                assert_eq!(event["userId"], gone_user.as_str());
                left.push(event);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for p in &mut peers {
        let mut kinds: Vec<String> = p
            .sio
            .take_all("track:unpublished")
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect();
        kinds.sort();
        assert_eq!(kinds, ["audio", "video"], "its tracks are gone");
    }
    let stats = server.state.sfu.stats().await.unwrap();
    assert_eq!(stats.peers, 2);
    drop(gone);
    server.stop().await;
}

#[tokio::test]
async fn a_member_removed_from_the_group_mid_call_stops_receiving_at_once() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let cyd = server.signed_up("cyd").await;
    let (group, chat) = group_with(&ada, "Trio", &[&bob, &cyd]).await;
    let people = [&ada, &bob, &cyd];
    let (call, mut peers) = connected_call(&server, &people, &chat).await;
    let (ada_id, bob_id, cyd_id) = (ada.user_id.clone(), bob.user_id.clone(), cyd.user_id.clone());
    let mut frame = 0;
    pump_with_media(&mut peers, &mut frame, |ps| {
        ps.iter().all(|p| p.published.len() == 4) && !ps[2].received_from(&ada_id, "video").is_empty()
    })
    .await;
    let received = |p: &Peer| {
        [&ada_id, &bob_id]
            .iter()
            .flat_map(|from| ["audio", "video"].map(|kind| p.received_from(from, kind).len()))
            .sum::<usize>()
    };

    // The admin removes Cyd while everyone is sending.
    let kick = ada
        .client
        .http
        .delete(ada.client.url(&format!("/api/v1/groups/{group}/members/{cyd_id}")))
        .bearer_auth(&ada.access);
    assert_eq!(ada.client.send(kick).await.status, 200);
    let removed_at = Instant::now();
    let mut told = [false; 3];
    while !told.iter().all(|t| *t) {
        assert!(
            removed_at.elapsed() < Duration::from_secs(3),
            "not everyone was told: {told:?}"
        );
        for p in peers.iter_mut() {
            p.send(frame);
            p.step().await;
        }
        frame += 1;
        for (i, p) in peers.iter_mut().enumerate() {
            told[i] |= p
                .sio
                .take_all("call:participant-left")
                .iter()
                .any(|e| e["userId"] == cyd_id.as_str() && e["callId"] == call.as_str());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // From now on nothing reaches Cyd, while Ada and Bob go on hearing each other.
    let settle = Instant::now() + Duration::from_millis(300);
    pump_with_media(&mut peers, &mut frame, |_| Instant::now() >= settle).await;
    let (cyd_before, ada_before) = (received(&peers[2]), received(&peers[0]));
    let until = Instant::now() + Duration::from_millis(1500);
    pump_with_media(&mut peers, &mut frame, |_| Instant::now() >= until).await;
    assert_eq!(
        received(&peers[2]),
        cyd_before,
        "the removed member still receives media"
    );
    assert!(received(&peers[0]) > ada_before + 20, "the call goes on for the others");

    // Whatever Cyd still asks of the call is refused like a call that does not exist.
    let cyd_peer = &mut peers[2];
    for (event, payload) in [
        (
            "participant:mute",
            json!({ "callId": call, "source": "microphone", "muted": true }),
        ),
        ("rtc:offer", json!({ "callId": call, "sdp": "v=0\r\n" })),
        ("call:join", json!({ "callId": call })),
    ] {
        let ack = cyd_peer.sio.emit(event, payload).await;
        assert_eq!(ack["error"]["code"], "not_found", "{event}: {ack}");
    }
    let stats = server.state.sfu.stats().await.unwrap();
    assert_eq!(stats.peers, 2, "the SFU dropped the removed member's peer");
    server.stop().await;
}

/// Steps every peer, sending a frame from each every few steps, until `done` holds.
async fn pump_with_media(peers: &mut [Peer], frame: &mut usize, done: impl Fn(&[Peer]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(peers) {
        assert!(Instant::now() < deadline, "tracks never flowed");
        for p in peers.iter_mut() {
            p.send(*frame);
        }
        *frame += 1;
        for _ in 0..10 {
            for p in peers.iter_mut() {
                p.step().await;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

#[tokio::test]
async fn a_late_joiners_tracks_and_the_calls_tracks_start_with_a_keyframe_soon_after_each_answer() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let cy = server.signed_up("cyd").await;
    let (_, chat) = group_with(&ada, "Standup", &[&bob, &cy]).await;
    let (call, mut peers) = connected_call(&server, &[&ada, &bob], &chat).await;
    let mut frame = 0;
    pump_with_media(&mut peers, &mut frame, |ps| {
        ps.iter().all(|p| p.first_packet.len() == 2)
    })
    .await;

    // The third joins the call in progress and publishes.
    let mut sio = socket(&server, &cy).await;
    let ack = sio.emit("call:join", json!({ "callId": call })).await;
    assert!(ack.get("data").is_some(), "{ack}");
    let mut late = Peer::new(&cy, sio, &call).await;
    let joined = Instant::now();
    late.publish().await;
    peers.push(late);
    pump_with_media(&mut peers, &mut frame, |ps| ps[2].rtc.is_connected()).await;
    eprintln!(
        "the late joiner's media connection was up {} ms after it published",
        joined.elapsed().as_millis()
    );
    pump_with_media(&mut peers, &mut frame, |ps| {
        ps.iter().all(|p| p.first_packet.len() == 4)
    })
    .await;

    // Every video track new to a subscriber (the late joiner's at the two others, the two
    // others' at the late joiner) starts with a keyframe: no undecodable frames first.
    let mut waits = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        for (track, event) in &p.published {
            if event["kind"] != "video" || (i < 2 && event["userId"] != cy.user_id.as_str()) {
                continue;
            }
            let (arrived, payload) = &p.first_packet[track];
            assert_eq!(
                payload.get(..2),
                Some(&[0x10u8, 0x00][..]),
                "{}'s first packet of {track} is not a keyframe",
                p.user_id
            );
            let answered = p.answered[track];
            waits.push(arrived.saturating_duration_since(answered));
        }
    }
    assert_eq!(
        waits.len(),
        4,
        "two new video tracks at the late joiner, one at each other"
    );
    let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
    eprintln!("answer to first keyframe, per new video subscription: {ms:?} ms");
    let metrics = server.client().get("/metrics", None).await.body;
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .contains("huddle_call_first_keyframe_seconds_count"),
        "the set-up time is in /metrics"
    );
}

#[tokio::test]
async fn bound_to_every_address_the_sfu_answers_from_the_one_each_client_sent_to() {
    // Media bound to the wildcard address and advertised on a second loopback address: a
    // client sends there from 127.0.0.1, and accepts answers only from where it sent.
    let server = TestServer::start_with(|c| {
        c.media_udp_addr = ([0, 0, 0, 0], 0).into();
        c.media_public_ip = Some([127, 0, 0, 2].into());
    })
    .await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let (_, chat) = group_with(&ada, "Pair", &[&bob]).await;
    let (_, mut peers) = connected_call(&server, &[&ada, &bob], &chat).await;
    let mut frame = 0;
    pump_with_media(&mut peers, &mut frame, |ps| {
        ps.iter().all(|p| p.first_packet.len() == 2)
    })
    .await;
}

/// Media packets each of a two-person call's peers has received from the other.
fn pair_received(ps: &[Peer]) -> usize {
    let (a, b) = (&ps[0].user_id, &ps[1].user_id);
    ["audio", "video"]
        .iter()
        .map(|kind| ps[0].received_from(b, kind).len() + ps[1].received_from(a, kind).len())
        .sum()
}

/// Both peers of a two-person call receive video from each other.
fn pair_sees_video(ps: &[Peer]) -> bool {
    !ps[0].received_from(&ps[1].user_id, "video").is_empty() && !ps[1].received_from(&ps[0].user_id, "video").is_empty()
}

/// Every peer is told `call` ended, terminated (its media failed).
async fn told_terminated(peers: &mut [Peer], call: &str) {
    for peer in peers {
        let ended = peer.sio.next("call:ended").await;
        assert_eq!(
            (ended["_id"].as_str(), ended["endReason"].as_str()),
            (Some(call), Some("terminated")),
            "{ended}"
        );
    }
}

/// A two-person call's media goes on flowing both ways for another 1.5 s.
async fn pair_keeps_its_media(peers: &mut [Peer], frame: &mut usize) {
    let before = pair_received(peers);
    let until = Instant::now() + Duration::from_millis(1500);
    pump_with_media(peers, frame, |_| Instant::now() >= until).await;
    let after = pair_received(peers);
    assert!(
        after > before + 20,
        "the other call lost its media: {before} then {after}"
    );
}

#[tokio::test]
async fn a_fault_in_one_calls_media_ends_that_call_and_the_other_call_keeps_its_media() {
    let server = TestServer::start().await;
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let cyd = server.signed_up("cyd").await;
    let dan = server.signed_up("dan").await;
    let (_, first_chat) = group_with(&ada, "First", &[&bob]).await;
    let (_, second_chat) = group_with(&cyd, "Second", &[&dan]).await;
    let (first, mut first_peers) = connected_call(&server, &[&ada, &bob], &first_chat).await;
    let (_, mut second_peers) = connected_call(&server, &[&cyd, &dan], &second_chat).await;
    let mut frame = 0;
    pump_with_media(&mut first_peers, &mut frame, |ps| {
        ps.iter().all(|p| p.published.len() == 2)
    })
    .await;
    pump_with_media(&mut second_peers, &mut frame, pair_sees_video).await;

    // Handling the first call's media panics, as a bug in it would.
    server.state.sfu.inject_fault(first.parse().unwrap()).await;
    told_terminated(&mut first_peers, &first).await;

    // The second call goes on: its media still flows both ways.
    pair_keeps_its_media(&mut second_peers, &mut frame).await;
    let stats = server.state.sfu.stats().await.unwrap();
    assert_eq!(
        (stats.rooms, stats.peers),
        (1, 2),
        "only the failed call's room is gone"
    );
    server.stop().await;
}

#[tokio::test]
async fn calls_land_on_different_workers_and_a_failed_worker_ends_only_its_call_and_comes_back() {
    let server = TestServer::start_with(|c| c.media_workers = 2).await;
    let names = ["ada", "bob", "cyd", "dan", "eve", "fay"];
    let mut people = Vec::new();
    for name in names {
        people.push(server.signed_up(name).await);
    }
    let (_, first_chat) = group_with(&people[0], "First", &[&people[1]]).await;
    let (_, second_chat) = group_with(&people[2], "Second", &[&people[3]]).await;
    let (first, mut first_peers) = connected_call(&server, &[&people[0], &people[1]], &first_chat).await;
    let (second, mut second_peers) = connected_call(&server, &[&people[2], &people[3]], &second_chat).await;
    let sfu = &server.state.sfu;
    let (first_worker, second_worker) = (
        sfu.worker_of(first.parse().unwrap())
            .expect("the first call has a worker"),
        sfu.worker_of(second.parse().unwrap())
            .expect("the second call has a worker"),
    );
    assert_ne!(first_worker, second_worker, "two calls on two idle workers share one");
    let addrs = sfu.local_addrs();
    assert_ne!(addrs[0].port(), addrs[1].port(), "each worker has its own port");

    // Both calls carry media, each through its own worker.
    let mut frame = 0;
    pump_with_media(&mut first_peers, &mut frame, pair_sees_video).await;
    pump_with_media(&mut second_peers, &mut frame, pair_sees_video).await;
    let stats = sfu.worker_stats().await.unwrap();
    assert!(
        stats.iter().all(|s| s.rooms == 1 && s.forwarded_packets > 0),
        "each worker carries one call: {stats:?}"
    );

    // The first call's worker fails outright: its call ends, the other goes on.
    sfu.crash_worker(first_worker).await;
    told_terminated(&mut first_peers, &first).await;
    pair_keeps_its_media(&mut second_peers, &mut frame).await;

    // The failed worker is back: the next call lands on it (the least loaded) and carries media.
    let (_, third_chat) = group_with(&people[4], "Third", &[&people[5]]).await;
    let (third, mut third_peers) = connected_call(&server, &[&people[4], &people[5]], &third_chat).await;
    assert_eq!(sfu.worker_of(third.parse().unwrap()), Some(first_worker));
    pump_with_media(&mut third_peers, &mut frame, pair_sees_video).await;
    let metrics = server.client().get("/metrics", None).await.body;
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("huddle_media_failures_total{scope=\"worker\"}")),
        "the worker's failure is in /metrics"
    );
    server.stop().await;
}
