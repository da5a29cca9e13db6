//! Scenario tests for a room with several participants: who receives which track, what the
//! room reports, and what it refuses.

use huddle_sfu::{ParticipantId, Room, RoomConfig, RoomEvent, SfuError, TrackId, TrackInfo, TrackKind};

const ALICE: ParticipantId = ParticipantId(1);
const BOB: ParticipantId = ParticipantId(2);
const CAROL: ParticipantId = ParticipantId(3);
const DAVE: ParticipantId = ParticipantId(4);

fn drain(room: &mut Room) -> Vec<RoomEvent> {
    std::iter::from_fn(|| room.poll_event()).collect()
}

fn subscribers(room: &Room, track: TrackId) -> Vec<ParticipantId> {
    room.subscribers_of(track).expect("track exists").collect()
}

fn room_with(participants: &[ParticipantId]) -> Room {
    let mut room = Room::new(RoomConfig::default()).unwrap();
    for p in participants {
        room.join(*p).unwrap();
    }
    drain(&mut room);
    room
}

#[test]
fn every_other_participant_receives_each_track_never_its_owner() {
    let mut room = room_with(&[ALICE, BOB, CAROL]);
    let a_audio = room.publish(ALICE, TrackKind::Audio).unwrap();
    let a_video = room.publish(ALICE, TrackKind::Video).unwrap();
    let b_screen = room.publish(BOB, TrackKind::Screen).unwrap();

    assert_eq!(subscribers(&room, a_audio), [BOB, CAROL]);
    assert_eq!(subscribers(&room, a_video), [BOB, CAROL]);
    assert_eq!(subscribers(&room, b_screen), [ALICE, CAROL]);

    assert_eq!(room.subscriptions_of(ALICE).unwrap().collect::<Vec<_>>(), [b_screen]);
    assert_eq!(
        room.subscriptions_of(CAROL).unwrap().collect::<Vec<_>>(),
        [a_audio, a_video, b_screen]
    );
    assert_eq!(
        room.track(b_screen),
        Some(TrackInfo {
            owner: BOB,
            kind: TrackKind::Screen
        })
    );

    assert_eq!(
        drain(&mut room),
        [
            RoomEvent::TrackPublished {
                track: a_audio,
                owner: ALICE,
                kind: TrackKind::Audio
            },
            RoomEvent::TrackPublished {
                track: a_video,
                owner: ALICE,
                kind: TrackKind::Video
            },
            RoomEvent::TrackPublished {
                track: b_screen,
                owner: BOB,
                kind: TrackKind::Screen
            },
        ]
    );
}

#[test]
fn a_late_joiner_receives_existing_tracks() {
    let mut room = room_with(&[ALICE, BOB]);
    let track = room.publish(ALICE, TrackKind::Video).unwrap();
    assert_eq!(subscribers(&room, track), [BOB]);

    room.join(DAVE).unwrap();
    assert_eq!(
        drain(&mut room).last(),
        Some(&RoomEvent::ParticipantJoined { participant: DAVE })
    );
    assert_eq!(subscribers(&room, track), [BOB, DAVE]);
    assert_eq!(room.subscriptions_of(DAVE).unwrap().collect::<Vec<_>>(), [track]);
}

#[test]
fn a_lone_publisher_has_no_subscribers() {
    let mut room = room_with(&[ALICE]);
    let track = room.publish(ALICE, TrackKind::Audio).unwrap();
    assert_eq!(subscribers(&room, track), []);
}

#[test]
fn leaving_unpublishes_tracks_then_reports_the_leave() {
    let mut room = room_with(&[ALICE, BOB, CAROL]);
    let b_audio = room.publish(BOB, TrackKind::Audio).unwrap();
    let b_video = room.publish(BOB, TrackKind::Video).unwrap();
    let c_audio = room.publish(CAROL, TrackKind::Audio).unwrap();
    drain(&mut room);

    room.leave(BOB).unwrap();
    assert_eq!(
        drain(&mut room),
        [
            RoomEvent::TrackUnpublished {
                track: b_audio,
                owner: BOB,
                kind: TrackKind::Audio
            },
            RoomEvent::TrackUnpublished {
                track: b_video,
                owner: BOB,
                kind: TrackKind::Video
            },
            RoomEvent::ParticipantLeft { participant: BOB },
        ]
    );
    assert_eq!(
        room.subscribers_of(b_audio).unwrap_err(),
        SfuError::UnknownTrack(b_audio)
    );
    assert_eq!(subscribers(&room, c_audio), [ALICE], "bob no longer receives carol");
    assert_eq!(room.track_count(), 1);
    assert!(!room.contains(BOB));
}

#[test]
fn the_last_leave_empties_the_room() {
    let mut room = room_with(&[ALICE, BOB]);
    room.leave(ALICE).unwrap();
    assert_eq!(drain(&mut room), [RoomEvent::ParticipantLeft { participant: ALICE }]);
    room.leave(BOB).unwrap();
    assert_eq!(
        drain(&mut room),
        [RoomEvent::ParticipantLeft { participant: BOB }, RoomEvent::RoomEmpty]
    );
    assert!(room.is_empty());
    assert_eq!(room.leave(BOB), Err(SfuError::UnknownParticipant(BOB)));
    assert!(drain(&mut room).is_empty(), "a refused leave reports nothing");
}

#[test]
fn only_the_owner_unpublishes() {
    let mut room = room_with(&[ALICE, BOB]);
    let track = room.publish(ALICE, TrackKind::Video).unwrap();
    drain(&mut room);

    assert_eq!(
        room.unpublish(BOB, track),
        Err(SfuError::NotTrackOwner {
            track,
            participant: BOB
        })
    );
    assert_eq!(room.unpublish(CAROL, track), Err(SfuError::UnknownParticipant(CAROL)));
    assert_eq!(subscribers(&room, track), [BOB], "refused unpublishes change nothing");

    room.unpublish(ALICE, track).unwrap();
    assert_eq!(
        drain(&mut room),
        [RoomEvent::TrackUnpublished {
            track,
            owner: ALICE,
            kind: TrackKind::Video
        }]
    );
    assert_eq!(room.tracks_of(ALICE), Some(&[][..]));
    assert_eq!(room.unpublish(ALICE, track), Err(SfuError::UnknownTrack(track)));
}

#[test]
fn track_ids_are_never_reused() {
    let mut room = room_with(&[ALICE]);
    let first = room.publish(ALICE, TrackKind::Audio).unwrap();
    room.unpublish(ALICE, first).unwrap();
    room.leave(ALICE).unwrap();
    room.join(ALICE).unwrap();
    let second = room.publish(ALICE, TrackKind::Audio).unwrap();
    assert_ne!(first, second);
    assert_eq!(room.track(first), None);
}

#[test]
fn joins_and_publishes_are_bounded() {
    let config = RoomConfig {
        max_participants: 2,
        max_tracks_per_participant: 2,
    };
    let mut room = Room::new(config).unwrap();
    room.join(ALICE).unwrap();
    assert_eq!(room.join(ALICE), Err(SfuError::AlreadyJoined(ALICE)));
    room.join(BOB).unwrap();
    assert_eq!(room.join(CAROL), Err(SfuError::RoomFull { max: 2 }));
    assert_eq!(room.participant_count(), 2);

    room.publish(ALICE, TrackKind::Audio).unwrap();
    room.publish(ALICE, TrackKind::Video).unwrap();
    let err = room.publish(ALICE, TrackKind::Screen).unwrap_err();
    assert_eq!(
        err,
        SfuError::TooManyTracks {
            participant: ALICE,
            max: 2
        }
    );
    assert_eq!(err.code().as_str(), "too_many_tracks");
    assert_eq!(
        room.publish(CAROL, TrackKind::Audio),
        Err(SfuError::UnknownParticipant(CAROL))
    );
    assert_eq!(room.tracks_of(ALICE).map(<[_]>::len), Some(2));
}

#[test]
fn bad_configs_are_refused() {
    for config in [
        RoomConfig {
            max_participants: 0,
            ..RoomConfig::default()
        },
        RoomConfig {
            max_participants: huddle_sfu::MAX_PARTICIPANTS + 1,
            ..RoomConfig::default()
        },
        RoomConfig {
            max_tracks_per_participant: 0,
            ..RoomConfig::default()
        },
    ] {
        assert!(
            matches!(Room::new(config), Err(SfuError::InvalidConfig(_))),
            "{config:?}"
        );
    }
}

#[test]
fn churn_leaves_nothing_behind() {
    let mut room = room_with(&[ALICE]);
    for round in 0..100u64 {
        let guest = ParticipantId(1000 + u128::from(round));
        room.join(guest).unwrap();
        let track = room.publish(guest, TrackKind::Video).unwrap();
        assert_eq!(subscribers(&room, track), [ALICE]);
        room.leave(guest).unwrap();
    }
    assert_eq!(room.participant_count(), 1);
    assert_eq!(room.track_count(), 0);
    let events = drain(&mut room);
    assert_eq!(events.len(), 400, "join, publish, unpublish, leave per round");
    assert!(!events.contains(&RoomEvent::RoomEmpty), "alice stayed throughout");
}

/// Small deterministic generator, so the random walk below is reproducible without a crate.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn random_walks_keep_the_forwarding_plan_consistent() {
    let kinds = [TrackKind::Audio, TrackKind::Video, TrackKind::Screen];
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut room = Room::new(RoomConfig {
        max_participants: 5,
        max_tracks_per_participant: 3,
    })
    .unwrap();
    let mut published: Vec<TrackId> = Vec::new();
    for _ in 0..20_000 {
        let p = ParticipantId(rng.below(7).into());
        // Refusals are expected here; what matters is that they never panic or corrupt state.
        match rng.below(4) {
            0 => drop(room.join(p)),
            1 => drop(room.leave(p)),
            2 => {
                if let Ok(track) = room.publish(p, kinds[rng.below(3) as usize]) {
                    published.push(track);
                }
            }
            _ => {
                if !published.is_empty() {
                    let track = published[rng.below(published.len() as u64) as usize];
                    drop(room.unpublish(p, track));
                }
            }
        }
        drain(&mut room);
        assert!(room.participant_count() <= 5);
        let mut tracks = 0;
        for member in room.participants() {
            let owned = room.tracks_of(member).expect("listed participants exist");
            assert!(owned.len() <= 3);
            tracks += owned.len();
            for &track in owned {
                let subs: Vec<_> = room.subscribers_of(track).unwrap().collect();
                assert!(!subs.contains(&member), "a publisher never receives its own track");
                assert_eq!(subs.len(), room.participant_count() - 1);
            }
        }
        assert_eq!(tracks, room.track_count(), "no track outlives its publisher");
    }
}
