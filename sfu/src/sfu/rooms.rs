//! What the room's bookkeeping means for connections: a track a client opens is published,
//! and every other participant gets a down track of it; a track that closes, or a participant
//! that leaves, takes its down tracks away again.

use std::time::Instant;

use log::warn;
use rtc::rtp_transceiver::RTCRtpReceiverId;

use super::{PEER_IN_ROOM, PUBLISHED, ROOM_OF_PEER, RoomId, Sfu};
use crate::downtrack::{stream_id, track_label};
use crate::publication::Publication;
use crate::{ParticipantId, PeerKey, RoomEvent, SfuEvent, TrackId};

/// Why a peer that is being drained is there.
const DRAINED: &str = "a peer being drained is in the SFU: failed peers leave after the drain";

impl Sfu {
    pub(super) fn on_track_open(
        &mut self,
        now: Instant,
        key: PeerKey,
        receiver: RTCRtpReceiverId,
        rtc_track_id: String,
        ssrc: u32,
        rid: Option<String>,
    ) {
        let peer = self.peers.get_mut(&key).expect(DRAINED);
        let room = self.rooms.get_mut(&key.room).expect(ROOM_OF_PEER);
        if let Some(&track) = peer.published.get(&rtc_track_id) {
            // Another simulcast layer of a track we know: its subscribers may want it.
            let publication = room.publications.get_mut(&track).expect(PUBLISHED);
            publication.add_encoding(ssrc, rid);
            let subscribers: Vec<ParticipantId> = room.room.subscribers_of(track).expect(PUBLISHED).collect();
            for participant in subscribers {
                self.reselect_layer(
                    now,
                    PeerKey {
                        room: key.room,
                        participant,
                    },
                    track,
                );
            }
            return;
        }
        let Some(opened) = peer.open_track(receiver, &rtc_track_id) else {
            return;
        };
        let track = match room.room.publish(key.participant, opened.kind) {
            Ok(track) => track,
            Err(err) => {
                warn!("{key:?}: track {rtc_track_id} not published: {err}");
                return;
            }
        };
        peer.published.insert(rtc_track_id, track);
        let publication = Publication::new(key.participant, receiver, opened, ssrc, rid);
        room.publications.insert(track, publication);
        self.process_room_events(now, key.room);
    }

    pub(super) fn on_track_closed(&mut self, now: Instant, key: PeerKey, rtc_track_id: &str) {
        let peer = self.peers.get_mut(&key).expect(DRAINED);
        // A track the room refused was never published.
        let Some(track) = peer.published.remove(rtc_track_id) else {
            return;
        };
        let room = self.rooms.get_mut(&key.room).expect(ROOM_OF_PEER);
        room.room
            .unpublish(key.participant, track)
            .expect("a peer's published tracks are the room's tracks of that participant");
        self.process_room_events(now, key.room);
    }

    /// Turns the room's bookkeeping changes into down tracks and events.
    pub(super) fn process_room_events(&mut self, now: Instant, room_id: RoomId) {
        loop {
            let room = self.rooms.get_mut(&room_id).expect(ROOM_OF_PEER);
            let Some(event) = room.room.poll_event() else {
                return;
            };
            match event {
                RoomEvent::ParticipantJoined { participant } => {
                    let key = PeerKey {
                        room: room_id,
                        participant,
                    };
                    let tracks: Vec<TrackId> = room.publications.keys().copied().collect();
                    for track in tracks {
                        self.subscribe(now, key, track);
                    }
                }
                RoomEvent::TrackPublished { track, owner, .. } => {
                    let others: Vec<ParticipantId> = room.room.participants().filter(|p| *p != owner).collect();
                    for participant in others {
                        self.subscribe(
                            now,
                            PeerKey {
                                room: room_id,
                                participant,
                            },
                            track,
                        );
                    }
                }
                RoomEvent::TrackUnpublished { track, owner, .. } => {
                    let publication = room.publications.remove(&track).expect(PUBLISHED);
                    for participant in room.room.participants() {
                        let key = PeerKey {
                            room: room_id,
                            participant,
                        };
                        let peer = self.peers.get_mut(&key).expect(PEER_IN_ROOM);
                        if peer.remove_downtrack(track) {
                            peer.touch(&mut self.dirty);
                            peer.queue_offer(&mut self.offers_due);
                        }
                    }
                    self.events.push_back(SfuEvent::TrackUnpublished {
                        room: room_id,
                        owner,
                        track,
                        kind: publication.kind,
                        source: publication.source,
                    });
                }
                RoomEvent::ParticipantLeft { .. } => {}
                RoomEvent::RoomEmpty => {
                    self.rooms.remove(&room_id);
                    return;
                }
            }
        }
    }

    /// Gives `key` a down track of `track`.
    fn subscribe(&mut self, now: Instant, key: PeerKey, track: TrackId) {
        let room = self.rooms.get(&key.room).expect(ROOM_OF_PEER);
        let publication = room.publications.get(&track).expect(PUBLISHED);
        let peer = self.peers.get_mut(&key).expect(PEER_IN_ROOM);
        if !peer.add_downtrack(track, publication) {
            return;
        }
        self.events.push_back(SfuEvent::TrackPublished {
            room: key.room,
            to: key.participant,
            owner: publication.owner,
            track,
            stream_id: stream_id(publication.owner),
            track_id: track_label(track),
            kind: publication.kind,
            source: publication.source,
        });
        peer.touch(&mut self.dirty);
        peer.queue_offer(&mut self.offers_due);
        self.reselect_layer(now, key, track);
    }
}
