//! The downlink's pacer, as an SFU needs it: a forwarded packet leaves at once unless the
//! downlink is congested. Audio never waits (it is a few kilobits, and late audio is lost
//! audio). Video leaves at once while the send-side estimate's budget covers it and nothing
//! is queued ahead of it; only past the budget is it held and released on the timer at the
//! estimated rate, as a pacer should.
//!
//! `rtc`'s own pacer holds every packet until the next `handle_timeout`, so each forwarded
//! packet waited for a timer turn of the SFU: added latency and a wake-up per packet for no
//! congestion at all.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Pacer, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use rtc::shared::marshal::MarshalSize;

/// Where a fresh connection's estimate starts, bits per second (the estimator moves it).
const START_BITRATE: f64 = 1_000_000.0;
/// Video packets held at most before new ones are refused (a queue this long is seconds).
const QUEUE_LIMIT: usize = 4096;

pub(crate) struct ForwardPacer {
    budget: Pacer,
    /// Streams sent unpaced: audio.
    audio: HashSet<u32>,
    held: VecDeque<TaggedPacket>,
    /// Leaving now, in order.
    out: VecDeque<TaggedPacket>,
    reads: VecDeque<TaggedPacket>,
}

impl ForwardPacer {
    pub fn new() -> Self {
        Self {
            budget: Pacer::new(START_BITRATE),
            audio: HashSet::new(),
            held: VecDeque::new(),
            out: VecDeque::new(),
            reads: VecDeque::new(),
        }
    }

    fn bits(packet: &TaggedPacket) -> f64 {
        match &packet.message.packet {
            Packet::Rtp(rtp) => (rtp.marshal_size() * 8) as f64,
            _ => 0.0,
        }
    }

    /// Moves what the budget now covers from the queue to the way out.
    fn release(&mut self, now: Instant) {
        self.budget.refill(now);
        while let Some(head) = self.held.front() {
            let bits = Self::bits(head);
            if !self.budget.can_release(bits) {
                break;
            }
            let mut packet = self.held.pop_front().expect("front just checked");
            self.budget.consume(bits);
            // It departs now: the send history must see this instant, not the enqueue one.
            packet.now = now;
            self.out.push_back(packet);
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for ForwardPacer {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        // The congestion controller's estimate passes on the read leg (see `rtc`'s pacer).
        if let Some(Attribute::TargetBitrateChanged { bits_per_second }) = msg
            .message
            .get(&Attribute::TargetBitrateChanged { bits_per_second: 0.0 })
        {
            self.budget.set_target_bitrate(*bits_per_second);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        let audio = match &msg.message.packet {
            Packet::Rtp(rtp) => self.audio.contains(&rtp.header.ssrc),
            // RTCP: feedback is only useful fresh.
            _ => {
                self.out.push_back(msg);
                return Ok(());
            }
        };
        let now = msg.now;
        if audio {
            // Counted against the budget (it shares the link) but never held.
            self.budget.refill(now);
            self.budget.consume(Self::bits(&msg));
            self.out.push_back(msg);
            return Ok(());
        }
        if self.held.len() >= QUEUE_LIMIT {
            // Refused: what is queued is older, and a hole in its middle costs the receiver
            // more than one at the end.
            return Ok(());
        }
        self.held.push_back(msg);
        self.release(now);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.out.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        self.release(now);
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        let head = self.held.front()?;
        self.budget.releasable_at(Self::bits(head))
    }
}

impl Interceptor for ForwardPacer {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if info.mime_type.to_ascii_lowercase().starts_with("audio/") {
            self.audio.insert(info.ssrc);
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.audio.remove(&info.ssrc);
    }

    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}

    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::AttributedPacket;
    use rtc::shared::{TransportContext, TransportMessage};
    use std::time::Duration;

    fn rtp(now: Instant, ssrc: u32, bytes: usize) -> TaggedPacket {
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                ssrc,
                ..Default::default()
            },
            payload: vec![0u8; bytes].into(),
        };
        TransportMessage {
            now,
            transport: TransportContext::default(),
            message: AttributedPacket {
                attributes: Vec::new(),
                packet: Packet::Rtp(packet),
            },
        }
    }

    fn stream(ssrc: u32, mime: &str) -> StreamInfo {
        StreamInfo {
            ssrc,
            mime_type: mime.into(),
            ..Default::default()
        }
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a starting instant; the test moves it itself
    fn an_uncongested_packet_leaves_at_once_and_audio_never_waits() {
        let mut pacer = ForwardPacer::new();
        pacer.bind_local_stream(&stream(1, "audio/opus"));
        pacer.bind_local_stream(&stream(2, "video/VP8"));
        let now = Instant::now();
        pacer.handle_write(rtp(now, 2, 1000)).unwrap();
        assert!(
            pacer.poll_write().is_some(),
            "video within the budget waited for a timer"
        );
        // Past the budget (1 Mbit/s: 100 kbit of burst), video is held ...
        for _ in 0..40 {
            pacer.handle_write(rtp(now, 2, 1000)).unwrap();
        }
        let mut left = 0;
        while pacer.poll_write().is_some() {
            left += 1;
        }
        assert!(left < 40, "all 40 video packets left at once, past the budget");
        let held = pacer.held.len();
        assert_eq!(left + held, 40);
        assert!(pacer.poll_timeout().is_some_and(|at| at > now));
        // ... while audio still leaves at once.
        pacer.handle_write(rtp(now, 1, 100)).unwrap();
        assert!(pacer.poll_write().is_some(), "audio waited behind congested video");
        // And the held video leaves as the budget refills, in order, each stamped with the
        // instant it was released, when the timer asks for it.
        let mut released = 0;
        let mut last = now;
        while let Some(at) = pacer.poll_timeout() {
            assert!(
                at >= last && at < now + Duration::from_secs(2),
                "release at {:?}",
                at - now
            );
            pacer.handle_timeout(at).unwrap();
            while let Some(p) = pacer.poll_write() {
                assert_eq!(p.now, at);
                released += 1;
            }
            last = at;
        }
        assert_eq!(released, held);
    }
}
