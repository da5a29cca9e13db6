//! Scenario tests: call sessions stepped on a virtual clock, no sockets, no runtime.

use std::time::Duration;

use huddle_signaling::{
    CallKind, CallSession, CallStatus, EndReason, InviteState, Millis, SessionConfig, SessionEvent, SignalingError,
};

const RING: Duration = Duration::from_secs(30);

fn config() -> SessionConfig {
    SessionConfig { ring_timeout: RING }
}

fn at(secs: u64) -> Millis {
    Millis::from_secs(secs)
}

fn drain(session: &mut CallSession) -> Vec<SessionEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

fn ids(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn joined(user: &str) -> SessionEvent {
    SessionEvent::ParticipantJoined { user_id: user.into() }
}

fn left(user: &str) -> SessionEvent {
    SessionEvent::ParticipantLeft { user_id: user.into() }
}

fn accepted(user: &str) -> SessionEvent {
    SessionEvent::Accepted { user_id: user.into() }
}

fn declined(user: &str) -> SessionEvent {
    SessionEvent::Declined { user_id: user.into() }
}

/// alice calls bob at t=100 s.
fn one_to_one() -> CallSession {
    let mut s = CallSession::new(config(), "call1", "alice", ["bob"], CallKind::Video, at(100)).expect("valid call");
    assert_eq!(
        drain(&mut s),
        vec![
            joined("alice"),
            SessionEvent::Ringing {
                user_ids: ids(&["bob"]),
                until: at(130)
            }
        ]
    );
    s
}

/// alice calls bob and carol at t=0.
fn group() -> CallSession {
    let mut s =
        CallSession::new(config(), "call2", "alice", ["bob", "carol"], CallKind::Audio, at(0)).expect("valid call");
    drain(&mut s);
    s
}

#[test]
fn ring_accept_join_leave_ends_the_call() {
    let mut s = one_to_one();
    assert_eq!(s.status(), CallStatus::Ringing);
    assert_eq!(s.poll_timeout(), Some(at(130)));

    s.accept("bob", at(105)).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![accepted("bob"), SessionEvent::Ongoing { at: at(105) }]
    );
    assert_eq!(s.status(), CallStatus::Ongoing);
    assert_eq!(s.answered_at(), Some(at(105)));
    assert_eq!(s.poll_timeout(), None, "nobody rings any more");

    s.join("bob", at(106)).unwrap();
    assert_eq!(drain(&mut s), vec![joined("bob")]);
    assert_eq!(s.joined().collect::<Vec<_>>(), ["alice", "bob"]);
    s.check_joined("bob").unwrap();

    // Well past the old ring deadline: the answered call keeps going.
    s.handle_timeout(at(200));
    assert!(drain(&mut s).is_empty());

    s.leave("alice", at(300)).unwrap();
    assert_eq!(drain(&mut s), vec![left("alice")]);
    assert_eq!(s.status(), CallStatus::Ongoing, "bob is still in the room");
    assert_eq!(s.check_joined("alice"), Err(SignalingError::NotJoined));

    s.leave("bob", at(301)).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![
            left("bob"),
            SessionEvent::Ended {
                status: CallStatus::Ended,
                reason: EndReason::Completed,
                participants: ids(&["alice", "bob"]),
                at: at(301),
            }
        ]
    );
    assert_eq!(s.ended_at(), Some(at(301)));
    assert_eq!(s.join("alice", at(302)), Err(SignalingError::CallEnded));
    assert_eq!(s.check_joined("bob"), Err(SignalingError::CallEnded));
    assert!(drain(&mut s).is_empty(), "a refused input changes nothing");
}

#[test]
fn ring_timeout_is_missed() {
    let mut s = one_to_one();
    s.handle_timeout(at(129));
    assert!(
        drain(&mut s).is_empty(),
        "one second before the deadline nothing happens"
    );
    assert_eq!(s.status(), CallStatus::Ringing);

    s.handle_timeout(at(130));
    assert_eq!(
        drain(&mut s),
        vec![
            SessionEvent::RingExpired {
                user_ids: ids(&["bob"])
            },
            SessionEvent::Ended {
                status: CallStatus::Missed,
                reason: EndReason::Timeout,
                participants: ids(&["alice"]),
                at: at(130),
            }
        ]
    );
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.invite_state("bob"), Some(InviteState::Expired));
    assert_eq!(s.accept("bob", at(131)), Err(SignalingError::CallEnded));
}

#[test]
fn late_accept_loses_to_the_deadline_even_before_the_timer_fires() {
    let mut s = one_to_one();
    // The driver's timer has not fired yet, but the accept arrives after the deadline.
    assert_eq!(s.accept("bob", at(131)), Err(SignalingError::CallEnded));
    let events = drain(&mut s);
    assert!(matches!(
        events.last(),
        Some(SessionEvent::Ended {
            status: CallStatus::Missed,
            reason: EndReason::Timeout,
            ..
        })
    ));
    // A timestamp from the past does not turn the clock back.
    assert_eq!(s.accept("bob", at(101)), Err(SignalingError::CallEnded));
}

#[test]
fn one_to_one_declined_ends_without_being_missed() {
    let mut s = one_to_one();
    s.decline("bob", at(103)).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![
            declined("bob"),
            SessionEvent::Ended {
                status: CallStatus::Ended,
                reason: EndReason::Declined,
                participants: ids(&["alice"]),
                at: at(103),
            }
        ]
    );
    assert_eq!(s.end_reason(), Some(EndReason::Declined));
    assert_eq!(s.answered_at(), None);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn cancel_is_for_the_initiator_only() {
    let mut s = one_to_one();
    assert_eq!(s.cancel("bob", at(101)), Err(SignalingError::NotInitiator));
    assert_eq!(s.cancel("mallory", at(101)), Err(SignalingError::NotInitiator));
    assert!(drain(&mut s).is_empty());
    assert_eq!(
        s.status(),
        CallStatus::Ringing,
        "refused cancels leave the call ringing"
    );

    s.cancel("alice", at(102)).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![SessionEvent::Ended {
            status: CallStatus::Missed,
            reason: EndReason::Cancelled,
            participants: ids(&["alice"]),
            at: at(102),
        }]
    );
}

#[test]
fn cancel_after_answer_is_refused() {
    let mut s = one_to_one();
    s.accept("bob", at(101)).unwrap();
    assert_eq!(s.cancel("alice", at(102)), Err(SignalingError::NotRinging));
    assert_eq!(s.status(), CallStatus::Ongoing);
}

#[test]
fn only_invitees_answer_and_only_members_join() {
    let mut s = one_to_one();
    assert_eq!(s.accept("alice", at(101)), Err(SignalingError::NotInvitee));
    assert_eq!(s.accept("mallory", at(101)), Err(SignalingError::NotInvitee));
    assert_eq!(s.decline("mallory", at(101)), Err(SignalingError::NotInvitee));
    assert_eq!(s.join("mallory", at(101)), Err(SignalingError::NotMember));
    assert_eq!(s.leave("mallory", at(101)), Err(SignalingError::NotJoined));
    assert_eq!(s.check_joined("mallory"), Err(SignalingError::NotJoined));
    assert!(!s.is_member("mallory"));
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.status(), CallStatus::Ringing);
}

#[test]
fn answers_and_joins_are_not_repeated() {
    let mut s = one_to_one();
    s.accept("bob", at(101)).unwrap();
    assert_eq!(s.accept("bob", at(102)), Err(SignalingError::AlreadyAnswered));
    assert_eq!(s.decline("bob", at(102)), Err(SignalingError::AlreadyAnswered));
    assert_eq!(s.join("alice", at(102)), Err(SignalingError::AlreadyJoined));
    s.join("bob", at(102)).unwrap();
    assert_eq!(s.join("bob", at(103)), Err(SignalingError::AlreadyJoined));
    assert_eq!(s.joined().count(), 2);
}

#[test]
fn initiator_hanging_up_while_ringing_is_a_cancel() {
    let mut s = one_to_one();
    s.leave("alice", at(110)).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![
            left("alice"),
            SessionEvent::Ended {
                status: CallStatus::Missed,
                reason: EndReason::Cancelled,
                participants: ids(&["alice"]),
                at: at(110),
            }
        ]
    );
}

#[test]
fn joining_while_ringing_answers_the_call() {
    let mut s = one_to_one();
    s.join("bob", at(104)).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![accepted("bob"), SessionEvent::Ongoing { at: at(104) }, joined("bob")]
    );
    assert_eq!(s.invite_state("bob"), Some(InviteState::Accepted));
}

#[test]
fn group_call_keeps_ringing_until_every_invitee_declines() {
    let mut s = group();
    s.decline("bob", at(5)).unwrap();
    assert_eq!(drain(&mut s), vec![declined("bob")]);
    assert_eq!(s.status(), CallStatus::Ringing, "carol is still ringing");
    assert_eq!(s.poll_timeout(), Some(at(30)));

    s.decline("carol", at(6)).unwrap();
    let events = drain(&mut s);
    assert_eq!(events[0], declined("carol"));
    assert!(matches!(
        events[1],
        SessionEvent::Ended {
            status: CallStatus::Ended,
            reason: EndReason::Declined,
            ..
        }
    ));
}

#[test]
fn group_call_unanswered_invitee_expires_and_may_join_late() {
    let mut s = group();
    s.accept("bob", at(2)).unwrap();
    s.join("bob", at(3)).unwrap();
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(at(30)), "carol still rings");

    s.handle_timeout(at(30));
    assert_eq!(
        drain(&mut s),
        vec![SessionEvent::RingExpired {
            user_ids: ids(&["carol"])
        }]
    );
    assert_eq!(
        s.status(),
        CallStatus::Ongoing,
        "an answered call survives the ring timeout"
    );
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.accept("carol", at(40)), Err(SignalingError::NotRinging));

    s.join("carol", at(41)).unwrap();
    assert_eq!(drain(&mut s), vec![accepted("carol"), joined("carol")]);

    for (user, t) in [("alice", 50), ("carol", 51), ("bob", 52)] {
        s.leave(user, at(t)).unwrap();
    }
    let events = drain(&mut s);
    assert_eq!(
        events.last(),
        Some(&SessionEvent::Ended {
            status: CallStatus::Ended,
            reason: EndReason::Completed,
            participants: ids(&["alice", "bob", "carol"]),
            at: at(52),
        })
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, SessionEvent::Ended { .. }))
            .count(),
        1
    );
}

#[test]
fn rejoining_after_leaving_keeps_the_call_alive() {
    let mut s = group();
    s.join("bob", at(1)).unwrap();
    s.leave("bob", at(2)).unwrap();
    s.join("bob", at(3)).unwrap();
    drain(&mut s);
    assert_eq!(s.joined().collect::<Vec<_>>(), ["alice", "bob"]);
    assert_eq!(s.participants().collect::<Vec<_>>(), ["alice", "bob"], "no duplicates");
}

#[test]
fn terminate_ends_an_ongoing_call_for_everyone() {
    let mut s = group();
    s.join("bob", at(1)).unwrap();
    drain(&mut s);
    s.terminate(at(9)).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![SessionEvent::Ended {
            status: CallStatus::Ended,
            reason: EndReason::Terminated,
            participants: ids(&["alice", "bob"]),
            at: at(9),
        }]
    );
    assert_eq!(s.joined().count(), 0);
    assert_eq!(s.terminate(at(10)), Err(SignalingError::CallEnded));
}

#[test]
fn construction_rejects_bad_input() {
    let new = |call_id: &str, initiator: &str, invitees: &[&str], cfg: SessionConfig| {
        CallSession::new(
            cfg,
            call_id,
            initiator,
            invitees.iter().copied(),
            CallKind::Audio,
            at(0),
        )
        .map(|_| ())
    };
    assert_eq!(new("c", "alice", &[], config()), Err(SignalingError::NoInvitees));
    assert_eq!(
        new("c", "alice", &["alice", "alice"], config()),
        Err(SignalingError::NoInvitees),
        "the initiator cannot ring themself"
    );
    assert_eq!(
        new("", "alice", &["bob"], config()),
        Err(SignalingError::EmptyField { field: "callId" })
    );
    assert_eq!(
        new("c", "alice", &["bob cat"], config()),
        Err(SignalingError::InvalidId { field: "invitee" })
    );
    let zero = SessionConfig {
        ring_timeout: Duration::ZERO,
    };
    assert!(matches!(
        new("c", "alice", &["bob"], zero),
        Err(SignalingError::InvalidConfig(_))
    ));
}

#[test]
fn duplicate_invitees_ring_once() {
    let mut s = CallSession::new(config(), "c", "alice", ["bob", "alice", "bob"], CallKind::Audio, at(0)).unwrap();
    let events = drain(&mut s);
    assert_eq!(
        events[1],
        SessionEvent::Ringing {
            user_ids: ids(&["bob"]),
            until: at(30)
        }
    );
    assert_eq!(s.invitees().count(), 1);
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
fn random_walks_never_break_the_invariants() {
    let users = ["alice", "bob", "carol", "dave", "mallory"];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2_000 {
        let mut s = CallSession::new(config(), "c", "alice", ["bob", "carol", "dave"], CallKind::Video, at(0)).unwrap();
        let mut now = 0;
        let mut in_room: Vec<String> = Vec::new();
        let mut ended = 0;
        for _ in 0..40 {
            now += rng.below(4_000);
            let t = Millis(now);
            let user = users[rng.below(users.len() as u64) as usize];
            let was_over = s.is_over();
            let result = match rng.below(16) {
                0..=2 => s.accept(user, t),
                3..=4 => s.decline(user, t),
                5 => s.cancel(user, t),
                6..=9 => s.join(user, t),
                10..=12 => s.leave(user, t),
                13..=14 => {
                    s.handle_timeout(t);
                    Ok(())
                }
                _ => s.terminate(t),
            };
            if was_over {
                assert!(matches!(result, Err(SignalingError::CallEnded) | Ok(())), "{result:?}");
            }
            for event in drain(&mut s) {
                match event {
                    SessionEvent::ParticipantJoined { user_id } => {
                        assert!(!in_room.contains(&user_id), "{user_id} joined twice");
                        in_room.push(user_id);
                    }
                    SessionEvent::ParticipantLeft { user_id } => {
                        assert!(in_room.contains(&user_id), "{user_id} left without joining");
                        in_room.retain(|u| *u != user_id);
                    }
                    SessionEvent::Ended { status, .. } => {
                        ended += 1;
                        in_room.clear();
                        assert_eq!(
                            status == CallStatus::Missed,
                            s.answered_at().is_none() && s.end_reason() != Some(EndReason::Declined)
                        );
                    }
                    _ => {}
                }
            }
            assert!(ended <= 1, "a call ends once");
            assert_eq!(s.is_over(), ended == 1);
            let mut joined: Vec<&str> = s.joined().collect();
            joined.sort_unstable();
            let mut replayed: Vec<&str> = in_room.iter().map(String::as_str).collect();
            replayed.sort_unstable();
            assert_eq!(joined, replayed, "events describe exactly who is in the room");
            assert!(!s.is_joined("mallory"));
            if s.is_over() {
                assert_eq!(s.poll_timeout(), None);
            }
        }
    }
}

#[test]
fn a_removed_member_leaves_the_room_and_is_refused_from_then_on() {
    let mut s = group();
    s.accept("bob", at(1)).unwrap();
    s.join("bob", at(1)).unwrap();
    s.join("carol", at(2)).unwrap();
    drain(&mut s);

    s.remove("carol", at(3)).unwrap();
    assert_eq!(drain(&mut s), vec![left("carol")]);
    assert!(!s.is_member("carol"));
    assert_eq!(s.join("carol", at(4)), Err(SignalingError::NotMember));
    assert_eq!(s.check_joined("carol"), Err(SignalingError::NotJoined));
    assert_eq!(s.remove("carol", at(4)), Err(SignalingError::NotMember));
    assert_eq!(s.status(), CallStatus::Ongoing, "alice and bob go on");

    // The initiator can be removed too; the last one out ends the call.
    s.remove("alice", at(5)).unwrap();
    assert_eq!(drain(&mut s), vec![left("alice")]);
    assert_eq!(s.join("alice", at(6)), Err(SignalingError::NotMember));
    s.remove("bob", at(7)).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![
            left("bob"),
            SessionEvent::Ended {
                status: CallStatus::Ended,
                reason: EndReason::Completed,
                participants: ids(&["alice", "bob", "carol"]),
                at: at(7),
            }
        ]
    );
}

#[test]
fn removing_the_last_one_rung_cancels_a_ringing_call() {
    let mut s = one_to_one();
    s.remove("bob", at(101)).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![SessionEvent::Ended {
            status: CallStatus::Missed,
            reason: EndReason::Cancelled,
            participants: ids(&["alice"]),
            at: at(101),
        }]
    );
    assert_eq!(s.invite_state("bob"), None);
}
