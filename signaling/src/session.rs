//! One call's lifecycle as a sans-IO state machine: ringing, answers, who is in the room, and
//! how it ends. The caller passes `now` into every input, arms a timer from `poll_timeout`, and
//! drains `poll_event` after each input; nothing here reads a clock or touches a socket.
//!
//! Rules:
//! - The initiator is in the call from the start; invitees ring until the ring timeout.
//! - Only invitees accept or decline; only the initiator cancels, and only while ringing.
//! - The first accept (or an invitee's join) makes the call `ongoing`. In a group call the
//!   invitees who have not answered keep ringing until the timeout, and may join later.
//! - Nobody answering in time ends the call as `missed`; every invitee declining ends it as
//!   `ended` (reason `declined`); the last participant leaving ends it (`missed` if nobody ever
//!   answered, `ended` otherwise).
//! - An input that arrives after the ring deadline sees the timeout first, even when the
//!   caller's timer has not fired yet, so a late accept cannot revive a missed call.

use std::collections::VecDeque;
use std::time::Duration;

use crate::protocol::validate_id;
use crate::{CallKind, CallStatus, EndReason, Millis, SignalingError};

/// How long invitees ring when the configuration does not say.
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(45);

/// Longest ring timeout accepted, so a typo cannot ring phones for hours.
pub const MAX_RING_TIMEOUT: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// How long invitees ring before the invitation expires.
    pub ring_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ring_timeout: DEFAULT_RING_TIMEOUT,
        }
    }
}

impl SessionConfig {
    pub fn validate(&self) -> Result<(), SignalingError> {
        if self.ring_timeout.is_zero() || self.ring_timeout > MAX_RING_TIMEOUT {
            return Err(SignalingError::InvalidConfig(
                "ring timeout must be between 1 ms and 10 min",
            ));
        }
        Ok(())
    }
}

/// Where one invitee stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InviteState {
    /// Ringing, no answer yet.
    Pending,
    Accepted,
    Declined,
    /// The ring timed out without an answer (the invitee may still join an ongoing call).
    Expired,
}

/// What happened, in order. The server turns these into Socket.IO emits, database writes and
/// SFU commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// These invitees' devices should ring until `until`.
    Ringing {
        user_ids: Vec<String>,
        until: Millis,
    },
    /// These invitees' rings stopped unanswered (ring timeout).
    RingExpired {
        user_ids: Vec<String>,
    },
    Accepted {
        user_id: String,
    },
    Declined {
        user_id: String,
    },
    /// The call was answered and is now `ongoing`.
    Ongoing {
        at: Millis,
    },
    ParticipantJoined {
        user_id: String,
    },
    ParticipantLeft {
        user_id: String,
    },
    /// The call is over: everyone is out of the room and every ring stops. `participants` is
    /// everyone who was ever in the call, in the order they first joined (the Call document's
    /// `participants`).
    Ended {
        status: CallStatus,
        reason: EndReason,
        participants: Vec<String>,
        at: Millis,
    },
}

#[derive(Debug, Clone)]
struct Invitee {
    user_id: String,
    state: InviteState,
}

/// One call, owned by one task and mutated through `&mut self`.
#[derive(Debug, Clone)]
pub struct CallSession {
    call_id: String,
    initiator: String,
    kind: CallKind,
    invitees: Vec<Invitee>,
    /// In the room now, in join order.
    joined: Vec<String>,
    /// The initiator lost their place in the call ([`CallSession::remove`]).
    initiator_removed: bool,
    /// Ever in the room, in first-join order.
    participants: Vec<String>,
    status: CallStatus,
    end_reason: Option<EndReason>,
    ring_deadline: Millis,
    created_at: Millis,
    answered_at: Option<Millis>,
    ended_at: Option<Millis>,
    /// Latest time seen; time never runs backwards inside a session.
    now: Millis,
    events: VecDeque<SessionEvent>,
}

impl CallSession {
    /// Starts ringing `invitees` on behalf of `initiator`, who is in the call from now on.
    /// Duplicate invitees and the initiator among them are dropped, so the caller may pass a
    /// chat's whole membership.
    pub fn new<I, S>(
        config: SessionConfig,
        call_id: impl Into<String>,
        initiator: impl Into<String>,
        invitees: I,
        kind: CallKind,
        now: Millis,
    ) -> Result<Self, SignalingError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        config.validate()?;
        let call_id = call_id.into();
        let initiator = initiator.into();
        validate_id("callId", &call_id)?;
        validate_id("initiator", &initiator)?;

        let mut list: Vec<Invitee> = Vec::new();
        for user_id in invitees {
            let user_id = user_id.into();
            validate_id("invitee", &user_id)?;
            if user_id != initiator && !list.iter().any(|i| i.user_id == user_id) {
                list.push(Invitee {
                    user_id,
                    state: InviteState::Pending,
                });
            }
        }
        if list.is_empty() {
            return Err(SignalingError::NoInvitees);
        }

        let ring_deadline = now.saturating_add(config.ring_timeout);
        let mut session = Self {
            call_id,
            initiator: initiator.clone(),
            kind,
            invitees: list,
            joined: vec![initiator.clone()],
            initiator_removed: false,
            participants: vec![initiator.clone()],
            status: CallStatus::Ringing,
            end_reason: None,
            ring_deadline,
            created_at: now,
            answered_at: None,
            ended_at: None,
            now,
            events: VecDeque::new(),
        };
        session
            .events
            .push_back(SessionEvent::ParticipantJoined { user_id: initiator });
        let user_ids = session.invitees.iter().map(|i| i.user_id.clone()).collect();
        session.events.push_back(SessionEvent::Ringing {
            user_ids,
            until: ring_deadline,
        });
        Ok(session)
    }

    /// An invitee answers.
    pub fn accept(&mut self, user_id: &str, now: Millis) -> Result<(), SignalingError> {
        self.begin_input(now)?;
        let idx = self.invitee_index(user_id).ok_or(SignalingError::NotInvitee)?;
        match self.invitees[idx].state {
            InviteState::Pending => {}
            InviteState::Expired => return Err(SignalingError::NotRinging),
            InviteState::Accepted | InviteState::Declined => {
                return Err(SignalingError::AlreadyAnswered);
            }
        }
        self.mark_accepted(idx);
        Ok(())
    }

    /// An invitee refuses. When every invitee of a still-ringing call has refused, it ends.
    pub fn decline(&mut self, user_id: &str, now: Millis) -> Result<(), SignalingError> {
        self.begin_input(now)?;
        let idx = self.invitee_index(user_id).ok_or(SignalingError::NotInvitee)?;
        match self.invitees[idx].state {
            InviteState::Pending => {}
            InviteState::Expired => return Err(SignalingError::NotRinging),
            InviteState::Accepted | InviteState::Declined => {
                return Err(SignalingError::AlreadyAnswered);
            }
        }
        self.invitees[idx].state = InviteState::Declined;
        self.events.push_back(SessionEvent::Declined {
            user_id: user_id.to_owned(),
        });
        // While ringing nobody has accepted, so "none pending" means everyone declined.
        if self.status == CallStatus::Ringing && !self.any_pending() {
            self.finish(EndReason::Declined);
        }
        Ok(())
    }

    /// The initiator stops the call before anyone answered.
    pub fn cancel(&mut self, user_id: &str, now: Millis) -> Result<(), SignalingError> {
        self.begin_input(now)?;
        if !self.is_initiator(user_id) {
            return Err(SignalingError::NotInitiator);
        }
        if self.status != CallStatus::Ringing {
            return Err(SignalingError::NotRinging);
        }
        self.finish(EndReason::Cancelled);
        Ok(())
    }

    /// A member enters the room: the initiator coming back, an invitee after accepting, or an
    /// invitee who had not answered (that counts as accepting) or whose ring expired.
    pub fn join(&mut self, user_id: &str, now: Millis) -> Result<(), SignalingError> {
        self.begin_input(now)?;
        let invitee = self.invitee_index(user_id);
        if invitee.is_none() && !self.is_initiator(user_id) {
            return Err(SignalingError::NotMember);
        }
        if self.is_joined(user_id) {
            return Err(SignalingError::AlreadyJoined);
        }
        if let Some(idx) = invitee
            && self.invitees[idx].state != InviteState::Accepted
        {
            self.mark_accepted(idx);
        }
        self.joined.push(user_id.to_owned());
        if !self.participants.iter().any(|p| p == user_id) {
            self.participants.push(user_id.to_owned());
        }
        self.events.push_back(SessionEvent::ParticipantJoined {
            user_id: user_id.to_owned(),
        });
        Ok(())
    }

    /// A participant hangs up. The last one out ends the call.
    pub fn leave(&mut self, user_id: &str, now: Millis) -> Result<(), SignalingError> {
        self.begin_input(now)?;
        let idx = self
            .joined
            .iter()
            .position(|u| u == user_id)
            .ok_or(SignalingError::NotJoined)?;
        let user_id = self.joined.remove(idx);
        self.events.push_back(SessionEvent::ParticipantLeft { user_id });
        if self.joined.is_empty() {
            let reason = if self.status == CallStatus::Ringing {
                EndReason::Cancelled
            } else {
                EndReason::Completed
            };
            self.finish(reason);
        }
        Ok(())
    }

    /// A member loses their place in the call (removed from the chat, or the 1:1 peer is no
    /// longer a friend): out of the room if in it, no longer rung, and no longer a member, so
    /// every later request of theirs is refused. The call ends when nobody is left in the
    /// room, or when it is still ringing and nobody is left to answer.
    pub fn remove(&mut self, user_id: &str, now: Millis) -> Result<(), SignalingError> {
        self.begin_input(now)?;
        if !self.is_member(user_id) {
            return Err(SignalingError::NotMember);
        }
        if self.is_initiator(user_id) {
            self.initiator_removed = true;
        }
        if let Some(idx) = self.invitee_index(user_id) {
            self.invitees.remove(idx);
        }
        if let Some(idx) = self.joined.iter().position(|u| u == user_id) {
            let user_id = self.joined.remove(idx);
            self.events.push_back(SessionEvent::ParticipantLeft { user_id });
        }
        let ringing = self.status == CallStatus::Ringing;
        if self.joined.is_empty() {
            self.finish(if ringing {
                EndReason::Cancelled
            } else {
                EndReason::Completed
            });
        } else if ringing && !self.any_pending() && self.invitees.iter().all(|i| i.state != InviteState::Accepted) {
            self.finish(EndReason::Cancelled);
        }
        Ok(())
    }

    /// The server ends the call for everyone (shutdown, room failure).
    pub fn terminate(&mut self, now: Millis) -> Result<(), SignalingError> {
        self.begin_input(now)?;
        self.finish(EndReason::Terminated);
        Ok(())
    }

    /// Advances the clock; expires unanswered rings once the deadline has passed.
    pub fn handle_timeout(&mut self, now: Millis) {
        self.advance(now);
    }

    /// When `handle_timeout` should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Millis> {
        (!self.is_over() && self.any_pending()).then_some(self.ring_deadline)
    }

    /// The next thing that happened, oldest first.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Ok when `user_id` is in the room now: the gate for relaying their SDP and ICE and for
    /// minting their TURN credentials.
    pub fn check_joined(&self, user_id: &str) -> Result<(), SignalingError> {
        if self.is_over() {
            return Err(SignalingError::CallEnded);
        }
        if !self.is_joined(user_id) {
            return Err(SignalingError::NotJoined);
        }
        Ok(())
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn initiator(&self) -> &str {
        &self.initiator
    }

    pub fn kind(&self) -> CallKind {
        self.kind
    }

    pub fn status(&self) -> CallStatus {
        self.status
    }

    pub fn end_reason(&self) -> Option<EndReason> {
        self.end_reason
    }

    pub fn is_over(&self) -> bool {
        matches!(self.status, CallStatus::Ended | CallStatus::Missed)
    }

    /// The initiator or an invitee, unless removed.
    pub fn is_member(&self, user_id: &str) -> bool {
        self.is_initiator(user_id) || self.invitee_index(user_id).is_some()
    }

    fn is_initiator(&self, user_id: &str) -> bool {
        user_id == self.initiator && !self.initiator_removed
    }

    pub fn is_joined(&self, user_id: &str) -> bool {
        self.joined.iter().any(|u| u == user_id)
    }

    /// Who is in the room now, in join order.
    pub fn joined(&self) -> impl Iterator<Item = &str> {
        self.joined.iter().map(String::as_str)
    }

    /// Everyone who was ever in the room, in first-join order.
    pub fn participants(&self) -> impl Iterator<Item = &str> {
        self.participants.iter().map(String::as_str)
    }

    pub fn invitees(&self) -> impl Iterator<Item = (&str, InviteState)> {
        self.invitees.iter().map(|i| (i.user_id.as_str(), i.state))
    }

    pub fn invite_state(&self, user_id: &str) -> Option<InviteState> {
        self.invitee_index(user_id).map(|i| self.invitees[i].state)
    }

    pub fn created_at(&self) -> Millis {
        self.created_at
    }

    pub fn answered_at(&self) -> Option<Millis> {
        self.answered_at
    }

    pub fn ended_at(&self) -> Option<Millis> {
        self.ended_at
    }

    pub fn ring_deadline(&self) -> Millis {
        self.ring_deadline
    }

    fn begin_input(&mut self, now: Millis) -> Result<(), SignalingError> {
        self.advance(now);
        if self.is_over() {
            return Err(SignalingError::CallEnded);
        }
        Ok(())
    }

    fn advance(&mut self, now: Millis) {
        self.now = self.now.max(now);
        if self.is_over() || self.now < self.ring_deadline || !self.any_pending() {
            return;
        }
        let mut user_ids = Vec::new();
        for invitee in self.invitees.iter_mut().filter(|i| i.state == InviteState::Pending) {
            invitee.state = InviteState::Expired;
            user_ids.push(invitee.user_id.clone());
        }
        self.events.push_back(SessionEvent::RingExpired { user_ids });
        if self.status == CallStatus::Ringing {
            self.finish(EndReason::Timeout);
        }
    }

    fn mark_accepted(&mut self, idx: usize) {
        self.invitees[idx].state = InviteState::Accepted;
        let user_id = self.invitees[idx].user_id.clone();
        self.events.push_back(SessionEvent::Accepted { user_id });
        if self.status == CallStatus::Ringing {
            self.status = CallStatus::Ongoing;
            self.answered_at = Some(self.now);
            self.events.push_back(SessionEvent::Ongoing { at: self.now });
        }
    }

    /// A call nobody answered is `missed`, except that refusing it is an answer (`ended`).
    fn finish(&mut self, reason: EndReason) {
        let status = if self.answered_at.is_some() || reason == EndReason::Declined {
            CallStatus::Ended
        } else {
            CallStatus::Missed
        };
        self.status = status;
        self.end_reason = Some(reason);
        self.ended_at = Some(self.now);
        self.joined.clear();
        self.events.push_back(SessionEvent::Ended {
            status,
            reason,
            participants: self.participants.clone(),
            at: self.now,
        });
    }

    fn invitee_index(&self, user_id: &str) -> Option<usize> {
        self.invitees.iter().position(|i| i.user_id == user_id)
    }

    fn any_pending(&self) -> bool {
        self.invitees.iter().any(|i| i.state == InviteState::Pending)
    }
}
