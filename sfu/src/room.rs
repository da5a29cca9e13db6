//! A call's room: who is in it, which tracks they publish, and the forwarding plan (every
//! published track goes to every other participant, never back to its publisher). Changes are
//! reported as `RoomEvent`s, oldest first, for the media glue to act on.

use std::collections::{BTreeMap, VecDeque, btree_map};
use std::fmt;

use crate::SfuError;

/// Hard ceiling on a room's size. Fan-out grows with publishers x participants, so a room this
/// large is for a few speakers and many listeners (a town hall), not everyone on camera.
pub const MAX_PARTICIPANTS: usize = 128;

/// Hard ceiling on tracks per participant (microphone, camera, screen, screen audio).
pub const MAX_TRACKS_PER_PARTICIPANT: usize = 4;

/// A participant, named by the caller: wide enough to hold the caller's own id (the server
/// puts its 12-byte user id here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParticipantId(pub u128);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// A published track, numbered by its room. Ids are never reused within a room, so a stale id
/// can never reach a newer track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrackId(pub u64);

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// Reads back a track's wire name (`t7`), as clients send it in `rtc:layer`.
impl std::str::FromStr for TrackId {
    type Err = crate::SfuError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix('t')
            .filter(|n| !n.starts_with('+'))
            .and_then(|n| n.parse().ok())
            .map(TrackId)
            .ok_or_else(|| crate::SfuError::UnknownTrackName(s.chars().take(64).collect()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Audio,
    Video,
    /// Screen share (video; its layers are chosen differently from a camera's).
    Screen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackInfo {
    pub owner: ParticipantId,
    pub kind: TrackKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomConfig {
    pub max_participants: usize,
    pub max_tracks_per_participant: usize,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            max_participants: 16,
            max_tracks_per_participant: MAX_TRACKS_PER_PARTICIPANT,
        }
    }
}

impl RoomConfig {
    pub fn validate(&self) -> Result<(), SfuError> {
        if !(1..=MAX_PARTICIPANTS).contains(&self.max_participants) {
            return Err(SfuError::InvalidConfig("max_participants must be 1 to 128"));
        }
        if !(1..=MAX_TRACKS_PER_PARTICIPANT).contains(&self.max_tracks_per_participant) {
            return Err(SfuError::InvalidConfig("max_tracks_per_participant must be 1 to 4"));
        }
        Ok(())
    }
}

/// What changed in the room, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    ParticipantJoined {
        participant: ParticipantId,
    },
    /// Reported after the participant's tracks were unpublished.
    ParticipantLeft {
        participant: ParticipantId,
    },
    /// Every other participant should now receive `track`.
    TrackPublished {
        track: TrackId,
        owner: ParticipantId,
        kind: TrackKind,
    },
    /// Forwarding of `track` stops for everyone.
    TrackUnpublished {
        track: TrackId,
        owner: ParticipantId,
        kind: TrackKind,
    },
    /// The last participant left; the owner of the room may drop it.
    RoomEmpty,
}

#[derive(Debug, Default)]
struct Participant {
    /// Tracks this participant publishes, in publish order.
    tracks: Vec<TrackId>,
}

/// One call's forwarding state, owned by one media task.
#[derive(Debug)]
pub struct Room {
    config: RoomConfig,
    participants: BTreeMap<ParticipantId, Participant>,
    tracks: BTreeMap<TrackId, TrackInfo>,
    next_track: u64,
    events: VecDeque<RoomEvent>,
}

impl Room {
    pub fn new(config: RoomConfig) -> Result<Self, SfuError> {
        config.validate()?;
        Ok(Self {
            config,
            participants: BTreeMap::new(),
            tracks: BTreeMap::new(),
            next_track: 0,
            events: VecDeque::new(),
        })
    }

    pub fn join(&mut self, participant: ParticipantId) -> Result<(), SfuError> {
        if self.participants.contains_key(&participant) {
            return Err(SfuError::AlreadyJoined(participant));
        }
        if self.participants.len() >= self.config.max_participants {
            return Err(SfuError::RoomFull {
                max: self.config.max_participants,
            });
        }
        self.participants.insert(participant, Participant::default());
        self.events.push_back(RoomEvent::ParticipantJoined { participant });
        Ok(())
    }

    /// Removes a participant and unpublishes its tracks first, so subscribers stop receiving
    /// them before the participant is reported gone.
    pub fn leave(&mut self, participant: ParticipantId) -> Result<(), SfuError> {
        let state = self
            .participants
            .remove(&participant)
            .ok_or(SfuError::UnknownParticipant(participant))?;
        for track in state.tracks {
            if let Some(info) = self.tracks.remove(&track) {
                self.events.push_back(RoomEvent::TrackUnpublished {
                    track,
                    owner: info.owner,
                    kind: info.kind,
                });
            }
        }
        self.events.push_back(RoomEvent::ParticipantLeft { participant });
        if self.participants.is_empty() {
            self.events.push_back(RoomEvent::RoomEmpty);
        }
        Ok(())
    }

    pub fn publish(&mut self, participant: ParticipantId, kind: TrackKind) -> Result<TrackId, SfuError> {
        let max = self.config.max_tracks_per_participant;
        let state = self
            .participants
            .get_mut(&participant)
            .ok_or(SfuError::UnknownParticipant(participant))?;
        if state.tracks.len() >= max {
            return Err(SfuError::TooManyTracks { participant, max });
        }
        let track = TrackId(self.next_track);
        // Bounded by publishes per room lifetime; u64 does not wrap in practice, and
        // saturating keeps this panic-free regardless.
        self.next_track = self.next_track.saturating_add(1);
        state.tracks.push(track);
        self.tracks.insert(
            track,
            TrackInfo {
                owner: participant,
                kind,
            },
        );
        self.events.push_back(RoomEvent::TrackPublished {
            track,
            owner: participant,
            kind,
        });
        Ok(track)
    }

    pub fn unpublish(&mut self, participant: ParticipantId, track: TrackId) -> Result<(), SfuError> {
        if !self.participants.contains_key(&participant) {
            return Err(SfuError::UnknownParticipant(participant));
        }
        let info = *self.tracks.get(&track).ok_or(SfuError::UnknownTrack(track))?;
        if info.owner != participant {
            return Err(SfuError::NotTrackOwner { track, participant });
        }
        self.tracks.remove(&track);
        if let Some(state) = self.participants.get_mut(&participant) {
            state.tracks.retain(|t| *t != track);
        }
        self.events.push_back(RoomEvent::TrackUnpublished {
            track,
            owner: participant,
            kind: info.kind,
        });
        Ok(())
    }

    /// Who receives `track`: every participant except its publisher, in id order.
    pub fn subscribers_of(&self, track: TrackId) -> Result<Subscribers<'_>, SfuError> {
        let info = self.tracks.get(&track).ok_or(SfuError::UnknownTrack(track))?;
        Ok(Subscribers {
            inner: self.participants.keys(),
            skip: info.owner,
        })
    }

    /// What `participant` receives: every track published by someone else, in id order.
    pub fn subscriptions_of(&self, participant: ParticipantId) -> Result<impl Iterator<Item = TrackId> + '_, SfuError> {
        if !self.participants.contains_key(&participant) {
            return Err(SfuError::UnknownParticipant(participant));
        }
        Ok(self
            .tracks
            .iter()
            .filter(move |(_, info)| info.owner != participant)
            .map(|(id, _)| *id))
    }

    pub fn poll_event(&mut self) -> Option<RoomEvent> {
        self.events.pop_front()
    }

    pub fn track(&self, track: TrackId) -> Option<TrackInfo> {
        self.tracks.get(&track).copied()
    }

    /// Tracks `participant` publishes, in publish order.
    pub fn tracks_of(&self, participant: ParticipantId) -> Option<&[TrackId]> {
        self.participants.get(&participant).map(|p| p.tracks.as_slice())
    }

    pub fn participants(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.participants.keys().copied()
    }

    pub fn contains(&self, participant: ParticipantId) -> bool {
        self.participants.contains_key(&participant)
    }

    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    pub fn track_count(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }
}

/// Iterator over a track's subscribers; see [`Room::subscribers_of`].
#[derive(Debug, Clone)]
pub struct Subscribers<'a> {
    inner: btree_map::Keys<'a, ParticipantId, Participant>,
    skip: ParticipantId,
}

impl Iterator for Subscribers<'_> {
    type Item = ParticipantId;

    fn next(&mut self) -> Option<ParticipantId> {
        self.inner.by_ref().copied().find(|p| *p != self.skip)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (_, upper) = self.inner.size_hint();
        (0, upper)
    }
}
