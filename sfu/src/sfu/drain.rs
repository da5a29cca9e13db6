//! Draining: after every input, each connection that may have output gives it up (datagrams
//! to send, events, media and feedback to pass on), until none is left; failed connections
//! leave; then the SFU makes the offers that became due.

use std::time::Instant;

use log::warn;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};

use super::{PEER_IN_ROOM, ROOM_OF_PEER, Sfu};
use crate::peer::OfferAttempt;
use crate::timers::Timer;
use crate::{PeerKey, SfuEvent, TrackId};

/// Why a listed peer is there.
const LISTED: &str = "the SFU's lists of peers to drain, to offer to and to remove name present peers: \
                      removing a peer takes it off them";

impl Sfu {
    /// Drains every connection that may have output, until none has, and removes those that
    /// failed meanwhile. `answering` is a peer whose offer the caller makes itself, to send
    /// with its reply.
    pub(super) fn drain(&mut self, now: Instant, answering: Option<PeerKey>) {
        let mut failed = Vec::new();
        loop {
            while let Some(key) = self.dirty.pop() {
                self.drain_peer(now, key);
            }
            // Removing a peer unsubscribes the others from its tracks: more to drain.
            let Some(key) = self.failed.pop() else {
                break;
            };
            warn!("{key:?}: media connection failed; removing the participant");
            self.remove_peer(now, key);
            failed.push(key);
        }
        self.make_due_offers(now, answering);
        for peer in failed {
            self.events.push_back(SfuEvent::PeerFailed { peer });
        }
        self.compact_timers();
    }

    /// Rebuilds the deadline heap from its owners once stale entries outnumber the live ones:
    /// there are at most a peer's, a room's and four tracks' per peer.
    fn compact_timers(&mut self) {
        if self.timers.len() <= 64 + 8 * self.peers.len() {
            return;
        }
        let interval = self.config.keyframe_request_interval;
        let peers = self
            .peers
            .iter()
            .filter_map(|(key, peer)| Some((peer.deadline?, Timer::Peer(*key))));
        let speakers = self
            .rooms
            .iter()
            .filter_map(|(id, room)| Some((room.speaker.poll_timeout()?, Timer::Speaker(*id))));
        let keyframes = self.rooms.iter().flat_map(|(id, room)| {
            room.publications
                .iter()
                .filter_map(move |(track, p)| Some((p.keyframes.due(interval)?, Timer::Keyframe(*id, *track))))
        });
        self.timers.rebuild(peers.chain(speakers).chain(keyframes));
    }

    fn drain_peer(&mut self, now: Instant, key: PeerKey) {
        let mut events = std::mem::take(&mut self.scratch_events);
        let mut messages = std::mem::take(&mut self.scratch_messages);
        let peer = self.peers.get_mut(&key).expect(LISTED);
        let before = peer.deadline;
        peer.deadline = peer.poll_output(&mut events, &mut messages, &mut self.transmits);
        self.timers.moved(Timer::Peer(key), before, peer.deadline);
        // The send-side estimate moves only with this connection's input: its TWCC feedback,
        // and timeouts.
        let relayer = peer.observe_estimate(now);
        for event in events.drain(..) {
            self.on_connection_event(now, key, event);
        }
        for message in messages.drain(..) {
            match message.message {
                RTCMessage::RtpPacket(track_id, packet) => self.on_rtp(now, key, &track_id, packet),
                RTCMessage::RtcpPacket(track_id, packets) => self.on_rtcp(now, key, &track_id, &packets),
                _ => {}
            }
        }
        self.scratch_events = events;
        self.scratch_messages = messages;
        if relayer {
            self.reselect_all(now, key);
        }
    }

    fn on_connection_event(&mut self, now: Instant, key: PeerKey, event: RTCPeerConnectionEvent) {
        let peer = self.peers.get_mut(&key).expect(LISTED);
        match event {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                log::debug!("{key:?}: connection {state}");
                match state {
                    RTCPeerConnectionState::Connected if peer.connected() => {
                        self.events.push_back(SfuEvent::Connected { peer: key });
                        // Connected means DTLS is done and SRTP keyed here (the SFU is the
                        // DTLS server: the client is keyed once its last flight arrives,
                        // before the keyframe asked for now can): tracks already answered
                        // for go live now.
                        let answered: Vec<TrackId> = peer
                            .downtracks
                            .iter()
                            .filter(|(_, d)| d.is_answered())
                            .map(|(t, _)| *t)
                            .collect();
                        for track in answered {
                            self.go_live(now, key, track);
                        }
                    }
                    RTCPeerConnectionState::Failed if peer.fail() => self.failed.push(key),
                    _ => {}
                }
            }
            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(state) => {
                log::debug!("{key:?}: ICE {state}");
                if state == RTCIceConnectionState::Failed && peer.fail() {
                    self.failed.push(key);
                }
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                self.on_track_open(now, key, init.receiver_id, init.track_id, init.ssrc, init.rid);
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track_id)) => {
                self.on_track_closed(now, key, &track_id);
            }
            _ => {}
        }
    }

    /// Makes the SFU's offers that are due, as events; a failed one is tried again at the next
    /// drain.
    fn make_due_offers(&mut self, now: Instant, answering: Option<PeerKey>) {
        if self.offers_due.is_empty() {
            return;
        }
        let mut retry = Vec::new();
        for key in std::mem::take(&mut self.offers_due) {
            let peer = self.peers.get_mut(&key).expect(LISTED);
            peer.unqueue_offer();
            if Some(key) == answering {
                continue;
            }
            match peer.make_offer(now) {
                OfferAttempt::Made(offer_id, sdp) => {
                    self.events.push_back(SfuEvent::Offer {
                        peer: key,
                        offer_id,
                        sdp,
                    });
                }
                OfferAttempt::NotDue => {}
                OfferAttempt::Failed => retry.push(key),
            }
        }
        for key in retry {
            self.peers
                .get_mut(&key)
                .expect(LISTED)
                .queue_offer(&mut self.offers_due);
        }
    }

    /// Takes a peer out: its connection closes, its routes and list entries go, and its room
    /// unpublishes its tracks.
    pub(super) fn remove_peer(&mut self, now: Instant, key: PeerKey) {
        let mut peer = self.peers.remove(&key).expect(LISTED);
        peer.close(&mut self.transmits);
        self.by_ufrag.remove(peer.ufrag());
        for addr in peer.addrs() {
            self.by_addr.remove(addr);
        }
        self.dirty.retain(|k| *k != key);
        self.offers_due.retain(|k| *k != key);
        self.failed.retain(|k| *k != key);
        let room = self.rooms.get_mut(&key.room).expect(ROOM_OF_PEER);
        let before = room.speaker.poll_timeout();
        room.speaker.remove(now, key.participant);
        self.timers
            .moved(Timer::Speaker(key.room), before, room.speaker.poll_timeout());
        room.room.leave(key.participant).expect(PEER_IN_ROOM);
        self.process_room_events(now, key.room);
    }
}
