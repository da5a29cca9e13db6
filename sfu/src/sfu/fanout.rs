//! Media between peers: each packet a publisher sends goes to every down track of its track,
//! and what subscribers ask for comes back as keyframe requests to the publisher (throttled)
//! and as simulcast layer choices.

use std::time::{Duration, Instant};

use rtc::rtp::Packet;

use super::{PEER_IN_ROOM, PUBLISHED, ROOM_OF_PEER, RoomId, Sfu};
use crate::downtrack::{DownTrack, Incoming};
use crate::munger::strip_extensions;
use crate::publication::KeyframeLayers;
use crate::timers::Timer;
use crate::{PeerKey, SfuEvent, TrackId};

/// How soon a down track still waiting for its first keyframe asks again. Encoders ignore
/// requests that come within a short window of the last (libwebrtc: 300 ms), so just past
/// it; the ordinary throttle (`keyframe_request_interval`) would make a new viewer wait.
const FIRST_KEYFRAME_RETRY: Duration = Duration::from_millis(350);

/// Why a down track's track has a publication.
const DOWNTRACK_PUBLISHED: &str = "a down track's publication lasts until every down track of it is removed";

impl Sfu {
    pub(super) fn on_rtp(&mut self, now: Instant, from: PeerKey, rtc_track_id: &str, mut packet: Packet) {
        // A track the room refused (one too many, or not what it was declared as) goes nowhere.
        let Some(&track) = self.peers.get(&from).expect(PEER_IN_ROOM).published.get(rtc_track_id) else {
            return;
        };
        let room = self.rooms.get_mut(&from.room).expect(ROOM_OF_PEER);
        let publication = room.publications.get(&track).expect(PUBLISHED);
        if let Some(level) = publication.audio_level(&packet.header) {
            let before = room.speaker.poll_timeout();
            room.speaker.observe(now, from.participant, level);
            self.timers
                .moved(Timer::Speaker(from.room), before, room.speaker.poll_timeout());
        }
        let keyframe = publication.is_keyframe(&packet.payload);
        strip_extensions(&mut packet.header);
        let incoming = Incoming {
            packet: &packet,
            keyframe,
            simulcast: publication.is_simulcast(),
            frame_gap: publication.frame_gap(),
            mime_type: &publication.codec.mime_type,
        };
        for participant in room.room.subscribers_of(track).expect(PUBLISHED) {
            let key = PeerKey {
                room: from.room,
                participant,
            };
            let peer = self.peers.get_mut(&key).expect(PEER_IN_ROOM);
            let Some(delivery) = peer.forward(now, track, &incoming, &mut self.transmits) else {
                continue;
            };
            if !delivery.direct {
                peer.touch_sent(&mut self.dirty);
            }
            self.stats.layer_switches += u64::from(delivery.switched);
            self.stats.forwarded_packets += u64::from(delivery.sent);
            if let Some(after_answer) = delivery.first_keyframe {
                self.awaiting_keyframe.remove(&(key, track));
                self.events.push_back(SfuEvent::FirstKeyframe {
                    peer: key,
                    track,
                    after_answer,
                });
            }
        }
    }

    pub(super) fn on_rtcp(
        &mut self,
        now: Instant,
        from: PeerKey,
        rtc_track_id: &str,
        packets: &[Box<dyn rtc::rtcp::Packet>],
    ) {
        let peer = self.peers.get_mut(&from).expect(PEER_IN_ROOM);
        // Feedback about a track the peer receives; other RTCP is not the SFU's to act on.
        let Some((track, feedback)) = peer.feedback(now, rtc_track_id, packets) else {
            return;
        };
        if feedback.keyframe {
            let layer = peer
                .downtracks
                .get(&track)
                .and_then(|d| d.current_layer().or(d.target_layer()));
            self.request_keyframe(now, from.room, track, layer);
        }
        if feedback.link_changed {
            self.reselect_all(now, from);
        }
    }

    /// Re-decides which layer of `track` goes to `key`; a change waits for a keyframe, which is
    /// requested.
    pub(super) fn reselect_layer(&mut self, now: Instant, key: PeerKey, track: TrackId) {
        let room = self.rooms.get(&key.room).expect(ROOM_OF_PEER);
        let publication = room.publications.get(&track).expect(PUBLISHED);
        let peer = self.peers.get_mut(&key).expect(PEER_IN_ROOM);
        if let Some(layer) = peer.reselect(now, track, publication) {
            self.request_keyframe(now, key.room, track, Some(layer));
        }
    }

    /// Re-decides the layer of everything `key` receives: its link's cap moved.
    pub(super) fn reselect_all(&mut self, now: Instant, key: PeerKey) {
        let peer = self.peers.get(&key).expect(PEER_IN_ROOM);
        let tracks: Vec<TrackId> = peer.downtracks.keys().copied().collect();
        for track in tracks {
            self.reselect_layer(now, key, track);
        }
    }

    /// `track` can now reach `key` (answered for and connected): pick its layer and ask the
    /// publisher for a keyframe at once, past the request throttle, so the subscriber's
    /// first frame does not wait out another subscriber's request.
    pub(super) fn go_live(&mut self, now: Instant, key: PeerKey, track: TrackId) {
        let peer = self.peers.get(&key).expect(PEER_IN_ROOM);
        // A drain since it was answered may have taken it away.
        if !peer.is_connected() || !peer.downtracks.get(&track).is_some_and(DownTrack::is_answered) {
            return;
        }
        self.reselect_layer(now, key, track);
        let peer = self.peers.get(&key).expect(PEER_IN_ROOM);
        let target = peer.downtracks.get(&track).and_then(DownTrack::target_layer);
        let room = self.rooms.get(&key.room).expect(ROOM_OF_PEER);
        if room
            .publications
            .get(&track)
            .expect(DOWNTRACK_PUBLISHED)
            .has_keyframes()
        {
            self.awaiting_keyframe.insert((key, track));
            self.request_keyframe_now(now, key.room, track, target);
        }
    }

    /// Asks again for the first keyframe of every live video down track still waiting for
    /// one: a publisher may have ignored a request that came too soon after another. Those
    /// whose subscriber or track is gone, or that got their keyframe, leave the list.
    pub(super) fn retry_first_keyframes(&mut self, now: Instant) {
        if self.awaiting_keyframe.is_empty() {
            return;
        }
        let peers = &self.peers;
        self.awaiting_keyframe.retain(|(key, track)| {
            peers
                .get(key)
                .and_then(|p| p.downtracks.get(track))
                .is_some_and(DownTrack::awaits_keyframe)
        });
        let waiting: Vec<(PeerKey, TrackId)> = self.awaiting_keyframe.iter().copied().collect();
        for (key, track) in waiting {
            let room = self.rooms.get(&key.room).expect(ROOM_OF_PEER);
            let publication = room.publications.get(&track).expect(DOWNTRACK_PUBLISHED);
            let asked = publication.keyframes.last_request();
            if asked.is_none_or(|at| now.saturating_duration_since(at) >= FIRST_KEYFRAME_RETRY) {
                let peer = self.peers.get(&key).expect(PEER_IN_ROOM);
                let target = peer.downtracks.get(&track).and_then(DownTrack::target_layer);
                self.request_keyframe_now(now, key.room, track, target);
            }
        }
    }

    /// Asks a track's publisher for a keyframe of layer `ssrc` (all layers: `None`), within the
    /// throttle (see [`KeyframeThrottle`](crate::publication::KeyframeThrottle)).
    pub(super) fn request_keyframe(&mut self, now: Instant, room: RoomId, track: TrackId, ssrc: Option<u32>) {
        let gap = self.config.keyframe_request_interval;
        self.keyframe_request(now, room, track, ssrc, gap);
    }

    /// [`request_keyframe`](Self::request_keyframe) past the throttle (merged with what it
    /// holds back), for a down track that just went live. Several going live at the same
    /// instant share one request.
    fn request_keyframe_now(&mut self, now: Instant, room: RoomId, track: TrackId, ssrc: Option<u32>) {
        self.keyframe_request(now, room, track, ssrc, Duration::from_millis(1));
    }

    fn keyframe_request(&mut self, now: Instant, room: RoomId, track: TrackId, ssrc: Option<u32>, gap: Duration) {
        let media = self.rooms.get_mut(&room).expect(ROOM_OF_PEER);
        let publication = media.publications.get_mut(&track).expect(DOWNTRACK_PUBLISHED);
        if !publication.has_keyframes() {
            return;
        }
        let interval = self.config.keyframe_request_interval;
        let before = publication.keyframes.due(interval);
        match publication.keyframes.request(now, ssrc, gap) {
            Some(layers) => self.send_keyframe_request(now, room, track, layers),
            None => {
                let after = publication.keyframes.due(interval);
                self.timers.moved(Timer::Keyframe(room, track), before, after);
            }
        }
    }

    /// Sends the request the throttle held back.
    pub(super) fn send_held_keyframe_request(&mut self, now: Instant, room: RoomId, track: TrackId) {
        let media = self.rooms.get_mut(&room).expect(ROOM_OF_PEER);
        let publication = media.publications.get_mut(&track).expect(PUBLISHED);
        let layers = publication.keyframes.sent(now);
        self.send_keyframe_request(now, room, track, layers);
    }

    fn send_keyframe_request(&mut self, now: Instant, room: RoomId, track: TrackId, layers: KeyframeLayers) {
        let media = self.rooms.get(&room).expect(ROOM_OF_PEER);
        let publication = media.publications.get(&track).expect(PUBLISHED);
        let owner = PeerKey {
            room,
            participant: publication.owner,
        };
        let peer = self
            .peers
            .get_mut(&owner)
            .expect("a publication's owner is in its room");
        peer.request_keyframe(now, publication.receiver, &publication.ssrcs(layers));
        self.stats.keyframe_requests += 1;
        peer.touch(&mut self.dirty);
    }
}
