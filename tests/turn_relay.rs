//! A participant that can only use relayed candidates reaches the SFU through a real coturn
//! (Debian's `turnserver`), configured from `turn-config/turnserver.conf`, with the TURN REST
//! credentials the server minted; coturn refuses expired and tampered ones. Loopback peers are
//! allowed in this test only (the shipped configuration denies them).

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{TestServer, friends_with_chat, socket};
use huddle_sfu::client::{ClientConfig, ClientPeer, MediaKind, RelayConfig, RelayState};
use huddle_signaling::{TurnSecret, turn_credentials};
use serde_json::{Value, json};
use tokio::net::UdpSocket;

const SECRET: &str = "turn-shared-secret-for-tests";

/// coturn on a free loopback port, stopped on drop.
struct Coturn {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Coturn {
    /// The shipped configuration, with a test port, the secret, and loopback allowed.
    fn start() -> Self {
        let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/turn-config/turnserver.conf"))
            .expect("turn-config/turnserver.conf");
        let port = free_udp_port();
        let dir = tempfile::tempdir().unwrap();
        let mut conf: Vec<String> = shipped
            .lines()
            .filter(|l| {
                !l.starts_with("listening-port")
                    && !l.starts_with("denied-peer-ip=127.")
                    && !l.starts_with("min-port")
                    && !l.starts_with("max-port")
            })
            .map(String::from)
            .collect();
        let relay_base = 40_000 + (port % 20_000);
        conf.extend([
            format!("listening-port={port}"),
            "listening-ip=127.0.0.1".into(),
            "relay-ip=127.0.0.1".into(),
            format!("min-port={relay_base}"),
            format!("max-port={}", relay_base + 50),
            "allow-loopback-peers".into(),
            format!("static-auth-secret={SECRET}"),
            format!("pidfile={}/turnserver.pid", dir.path().display()),
            format!("userdb={}/turndb", dir.path().display()),
        ]);
        let path = dir.path().join("turnserver.conf");
        std::fs::write(&path, conf.join("\n")).unwrap();
        let mut child = Command::new("turnserver")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("coturn's turnserver (apt install coturn; make test installs it)");
        // Ready once its relay servers are up.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("Total General servers") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(15)).expect("coturn started");
        Self { child, port, _dir: dir }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// Drives one client peer on its UDP socket until `done` holds (10 s at most).
async fn drive(peer: &mut ClientPeer, udp: &UdpSocket, what: &str, done: impl Fn(&ClientPeer) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let local = udp.local_addr().unwrap();
    let mut buf = [0u8; 2048];
    while !done(peer) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        step(peer, udp, local, &mut buf).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn step(peer: &mut ClientPeer, udp: &UdpSocket, local: SocketAddr, buf: &mut [u8]) {
    while let Ok((n, from)) = udp.try_recv_from(buf) {
        peer.handle_datagram(Instant::now(), from, local, &buf[..n]);
    }
    let now = Instant::now();
    if peer.poll_timeout().is_some_and(|at| at <= now) {
        peer.handle_timeout(now);
    }
    while let Some((_, to, payload)) = peer.poll_transmit() {
        let _ = udp.send_to(&payload, to).await;
    }
}

async fn relayed_peer(
    name: &str,
    turn: SocketAddr,
    username: &str,
    password: &str,
    sfu: SocketAddr,
) -> (ClientPeer, UdpSocket) {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut config = ClientConfig::new(udp.local_addr().unwrap(), name);
    config.relay = Some(RelayConfig {
        server: turn,
        username: username.into(),
        password: password.into(),
        permit: vec![sfu],
    });
    (ClientPeer::new(Instant::now(), config).unwrap(), udp)
}

/// Offers, applies the answer and any offer that follows.
async fn negotiate(peer: &mut ClientPeer, sio: &mut common::sio::SioClient, call: &str) {
    let sdp = peer.create_offer(Instant::now()).unwrap();
    let ack = sio.emit("rtc:offer", json!({ "callId": call, "sdp": sdp })).await;
    let data = ack.get("data").unwrap_or_else(|| panic!("{ack}")).clone();
    peer.apply_answer(Instant::now(), data["sdp"].as_str().unwrap().into())
        .unwrap();
    answer_offers(peer, sio, call, data.get("offer").cloned()).await;
}

/// Answers the SFU's offer (and any it makes in reply): a track reaches a subscriber once
/// the subscriber has answered the offer that describes it.
async fn answer_offers(peer: &mut ClientPeer, sio: &mut common::sio::SioClient, call: &str, mut offer: Option<Value>) {
    while let Some(o) = offer.take() {
        if let Some(answer) = peer
            .apply_offer(Instant::now(), o["sdp"].as_str().unwrap().into())
            .unwrap()
        {
            let ack = sio
                .emit(
                    "rtc:answer",
                    json!({ "callId": call, "sdp": answer, "offerId": o["offerId"] }),
                )
                .await;
            offer = ack["data"].get("offer").cloned();
        }
    }
}

#[tokio::test]
async fn a_relay_only_client_reaches_the_sfu_through_coturn_with_minted_credentials() {
    let coturn = Coturn::start();
    let turn_url = format!("turn:127.0.0.1:{}?transport=udp", coturn.port);
    let server = TestServer::start_with(|c| {
        c.turn_secret = Some(huddle::config::Secret::new(SECRET));
        c.turn_urls = vec![turn_url.clone()];
    })
    .await;
    let sfu = server.state.sfu.local_addr();
    let ada = server.signed_up("ada").await;
    let bob = server.signed_up("bob").await;
    let chat = friends_with_chat(&ada, &bob).await;
    let mut ada_socket = socket(&server, &ada).await;
    let mut bob_socket = socket(&server, &bob).await;
    let ack = ada_socket
        .emit("call:start", json!({ "chatId": chat, "type": "audio" }))
        .await;
    let call = ack["data"]["_id"].as_str().unwrap().to_string();
    bob_socket.next("call:incoming").await;
    bob_socket.emit("call:accept", json!({ "callId": call })).await;
    let join = bob_socket.emit("call:join", json!({ "callId": call })).await;
    let turn: Value = join["data"]["iceServers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["urls"][0] == turn_url.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("no TURN server in {join}"));
    let (username, credential) = (turn["username"].as_str().unwrap(), turn["credential"].as_str().unwrap());

    // Bob can only use the relay; Ada is on the host network.
    let (mut bob_peer, bob_udp) = relayed_peer("bob", coturn.addr(), username, credential, sfu).await;
    drive(&mut bob_peer, &bob_udp, "the relay allocation", |p| {
        !matches!(p.relay_state(), Some(RelayState::Allocating))
    })
    .await;
    let relayed = match bob_peer.relay_state() {
        Some(RelayState::Allocated(addr)) => *addr,
        other => panic!("coturn refused the minted credentials: {other:?}"),
    };
    assert_eq!(relayed.ip(), coturn.addr().ip());
    assert_ne!(relayed, bob_udp.local_addr().unwrap());
    negotiate(&mut bob_peer, &mut bob_socket, &call).await;
    drive(
        &mut bob_peer,
        &bob_udp,
        "a relayed connection to the SFU",
        ClientPeer::is_connected,
    )
    .await;

    let ada_udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut ada_peer = ClientPeer::new(
        Instant::now(),
        ClientConfig {
            video: false,
            ..ClientConfig::new(ada_udp.local_addr().unwrap(), "ada")
        },
    )
    .unwrap();
    negotiate(&mut ada_peer, &mut ada_socket, &call).await;
    drive(&mut ada_peer, &ada_udp, "Ada's connection", ClientPeer::is_connected).await;

    // Bob's audio crosses the relay and the SFU to Ada, byte for byte.
    let (ada_local, bob_local) = (ada_udp.local_addr().unwrap(), bob_udp.local_addr().unwrap());
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut frame = 0u32;
    let expected = |f: u32| Bytes::from(format!("relayed opus #{f}"));
    loop {
        let got: Vec<Bytes> = ada_peer
            .remote_tracks()
            .values()
            .flat_map(|t| t.payloads.iter().cloned())
            .collect();
        if got.len() >= 20 {
            assert!(got.iter().all(|p| (0..frame).any(|f| expected(f) == p)), "{got:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "relayed audio never reached Ada ({} packets)",
            got.len()
        );
        bob_peer
            .send(Instant::now(), MediaKind::Audio, expected(frame))
            .unwrap();
        frame += 1;
        for _ in 0..5 {
            step(&mut bob_peer, &bob_udp, bob_local, &mut buf).await;
            step(&mut ada_peer, &ada_udp, ada_local, &mut buf).await;
            for offer in ada_socket.take_all("rtc:offer") {
                answer_offers(&mut ada_peer, &mut ada_socket, &call, Some(offer)).await;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn coturn_refuses_expired_and_tampered_credentials() {
    let coturn = Coturn::start();
    let secret = TurnSecret::new(SECRET).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let sfu: SocketAddr = "127.0.0.1:9".parse().unwrap();

    // Minted an hour and a bit ago with a one-hour lifetime: expired.
    let expired = turn_credentials(
        &secret,
        "65a1f0c2e4b0a1b2c3d4e5f6",
        now - 3700,
        Duration::from_secs(3600),
    )
    .unwrap();
    // Fresh, but with the credential altered.
    let fresh = turn_credentials(&secret, "65a1f0c2e4b0a1b2c3d4e5f6", now, Duration::from_secs(3600)).unwrap();
    let mut tampered = fresh.credential.clone().into_bytes();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    // The username's user part changed after minting.
    let (expiry, _) = fresh.username.split_once(':').unwrap();
    let other_user = format!("{expiry}:65a1f0c2e4b0a1b2c3d4e5f7");

    for (case, username, password) in [
        ("expired", expired.username.as_str(), expired.credential.as_str()),
        ("tampered credential", fresh.username.as_str(), tampered.as_str()),
        ("tampered username", other_user.as_str(), fresh.credential.as_str()),
    ] {
        let (mut peer, udp) = relayed_peer(case, coturn.addr(), username, password, sfu).await;
        drive(&mut peer, &udp, case, |p| {
            !matches!(p.relay_state(), Some(RelayState::Allocating))
        })
        .await;
        assert!(
            matches!(peer.relay_state(), Some(RelayState::Refused(_))),
            "{case}: {:?}",
            peer.relay_state()
        );
    }
    // The same server grants the untouched fresh credential (so the refusals above are about
    // the credentials, not the set-up).
    let (mut peer, udp) = relayed_peer("fresh", coturn.addr(), &fresh.username, &fresh.credential, sfu).await;
    drive(&mut peer, &udp, "fresh", |p| {
        !matches!(p.relay_state(), Some(RelayState::Allocating))
    })
    .await;
    assert!(
        matches!(peer.relay_state(), Some(RelayState::Allocated(_))),
        "{:?}",
        peer.relay_state()
    );
}
