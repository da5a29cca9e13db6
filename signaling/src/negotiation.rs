//! Offer/answer bookkeeping between one participant and the SFU, as a sans-IO state machine.
//!
//! Both sides may offer: the client when it publishes or stops a track, the SFU when the
//! tracks the client receives change. The SFU is the polite side: when offers cross, it
//! withdraws its own, answers the client's, and offers again afterwards. Each SFU offer carries
//! an id; an answer must name the offer it answers, so a late answer to a withdrawn offer can
//! never be applied to a newer one.

use crate::SignalingError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegotiationState {
    /// No offer outstanding.
    Stable,
    /// The SFU sent offer `offer_id` and waits for its answer.
    AwaitingAnswer { offer_id: u64 },
}

/// What to do with a client's offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteOffer {
    /// Apply it and answer.
    Apply,
    /// Roll back the SFU's outstanding offer first, then apply and answer; the SFU offers again
    /// once the client's offer is answered.
    RollbackThenApply { withdrawn: u64 },
}

#[derive(Debug, Clone, Default)]
pub struct Negotiation {
    awaiting: Option<u64>,
    last_offer_id: u64,
    renegotiate: bool,
}

impl Negotiation {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn state(&self) -> NegotiationState {
        match self.awaiting {
            Some(offer_id) => NegotiationState::AwaitingAnswer { offer_id },
            None => NegotiationState::Stable,
        }
    }

    /// The tracks the client should receive changed; an offer is due when the state allows.
    pub fn renegotiation_needed(&mut self) {
        self.renegotiate = true;
    }

    pub fn is_renegotiation_pending(&self) -> bool {
        self.renegotiate
    }

    /// A client offer arrived; the answer to it goes out before this returns to the caller's
    /// event loop, so the state is stable afterwards.
    pub fn remote_offer(&mut self) -> RemoteOffer {
        match self.awaiting.take() {
            Some(withdrawn) => {
                self.renegotiate = true;
                RemoteOffer::RollbackThenApply { withdrawn }
            }
            None => RemoteOffer::Apply,
        }
    }

    /// The id for the SFU's next offer, when one is due and none is outstanding. The caller
    /// must send the offer (or call [`Self::offer_failed`]).
    pub fn poll_offer(&mut self) -> Option<u64> {
        if !self.renegotiate || self.awaiting.is_some() {
            return None;
        }
        self.renegotiate = false;
        self.last_offer_id += 1;
        self.awaiting = Some(self.last_offer_id);
        Some(self.last_offer_id)
    }

    /// Creating the offer failed; it is retried at the next `poll_offer`.
    pub fn offer_failed(&mut self) {
        self.awaiting = None;
        self.renegotiate = true;
    }

    /// The client answered `offer_id`. Refused unless that offer is the one outstanding.
    pub fn remote_answer(&mut self, offer_id: u64) -> Result<(), SignalingError> {
        match self.awaiting {
            Some(expected) if expected == offer_id => {
                self.awaiting = None;
                Ok(())
            }
            _ => Err(SignalingError::UnexpectedAnswer { offer_id }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_is_made_only_when_due_and_none_is_outstanding() {
        let mut n = Negotiation::new();
        assert_eq!(n.poll_offer(), None);
        n.renegotiation_needed();
        assert_eq!(n.poll_offer(), Some(1));
        n.renegotiation_needed();
        assert_eq!(n.poll_offer(), None, "one offer at a time");
        assert_eq!(n.remote_answer(1), Ok(()));
        assert_eq!(n.poll_offer(), Some(2), "the change made meanwhile gets its own offer");
        assert_eq!(n.state(), NegotiationState::AwaitingAnswer { offer_id: 2 });
    }

    #[test]
    fn crossing_offers_withdraw_the_sfu_offer_and_retry_it_later() {
        let mut n = Negotiation::new();
        n.renegotiation_needed();
        assert_eq!(n.poll_offer(), Some(1));
        assert_eq!(n.remote_offer(), RemoteOffer::RollbackThenApply { withdrawn: 1 });
        assert_eq!(n.state(), NegotiationState::Stable);
        assert_eq!(
            n.remote_answer(1),
            Err(SignalingError::UnexpectedAnswer { offer_id: 1 }),
            "a late answer to a withdrawn offer is refused"
        );
        assert_eq!(n.poll_offer(), Some(2));
        assert_eq!(
            n.remote_answer(1),
            Err(SignalingError::UnexpectedAnswer { offer_id: 1 }),
            "and never applies to the newer offer"
        );
        assert_eq!(n.remote_answer(2), Ok(()));
        assert_eq!(n.state(), NegotiationState::Stable);
    }

    #[test]
    fn a_failed_offer_is_retried() {
        let mut n = Negotiation::new();
        n.renegotiation_needed();
        assert_eq!(n.poll_offer(), Some(1));
        n.offer_failed();
        assert_eq!(n.poll_offer(), Some(2));
        assert_eq!(n.remote_offer(), RemoteOffer::RollbackThenApply { withdrawn: 2 });
        assert!(n.is_renegotiation_pending());
    }
}
