//! A published track, as its subscribers need it: the publisher's receiver, the codec, the
//! simulcast layers (encodings) known so far, and the throttle on keyframe requests to the
//! publisher.

use std::time::{Duration, Instant};

use huddle_signaling::{Layer, TrackSource};
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;

use crate::codec::{VideoCodec, is_keyframe};
use crate::layer::layer_of;
use crate::{ParticipantId, TrackKind};

/// One encoding of a published track: a simulcast layer, or the whole track without RIDs.
#[derive(Debug)]
struct Encoding {
    ssrc: u32,
    rid: Option<String>,
    layer: Layer,
}

/// What a client publishes on a newly opened track, as its connection negotiated it.
#[derive(Debug)]
pub(crate) struct OpenedTrack {
    pub source: TrackSource,
    pub kind: TrackKind,
    pub codec: RTCRtpCodec,
    pub audio_level_ext: Option<u8>,
}

#[derive(Debug)]
pub(crate) struct Publication {
    pub owner: ParticipantId,
    /// The publisher connection's receiver for it.
    pub receiver: RTCRtpReceiverId,
    pub source: TrackSource,
    pub kind: TrackKind,
    pub codec: RTCRtpCodec,
    video_codec: Option<VideoCodec>,
    /// Known from the first packet of each; a simulcast track names its layers with RIDs.
    encodings: Vec<Encoding>,
    simulcast: bool,
    audio_level_ext: Option<u8>,
    pub keyframes: KeyframeThrottle,
}

impl Publication {
    /// `owner` publishes `track` on `receiver`; its first encoding is `ssrc` (and `rid`).
    pub fn new(
        owner: ParticipantId,
        receiver: RTCRtpReceiverId,
        track: OpenedTrack,
        ssrc: u32,
        rid: Option<String>,
    ) -> Self {
        let mut publication = Self {
            owner,
            receiver,
            source: track.source,
            kind: track.kind,
            video_codec: VideoCodec::from_mime(&track.codec.mime_type),
            codec: track.codec,
            encodings: Vec::new(),
            simulcast: false,
            audio_level_ext: track.audio_level_ext,
            keyframes: KeyframeThrottle::default(),
        };
        publication.add_encoding(ssrc, rid);
        publication
    }

    /// Another simulcast layer opened. Returns false when it was known already.
    pub fn add_encoding(&mut self, ssrc: u32, rid: Option<String>) -> bool {
        if self.encodings.iter().any(|e| e.ssrc == ssrc) {
            return false;
        }
        self.encodings.push(Encoding {
            ssrc,
            rid,
            layer: Layer::High,
        });
        // A layer is named among all the track's RIDs, so a new one may rename the others.
        let rids: Vec<String> = self.encodings.iter().filter_map(|e| e.rid.clone()).collect();
        for encoding in &mut self.encodings {
            encoding.layer = encoding.rid.as_deref().map_or(Layer::High, |rid| layer_of(rid, &rids));
        }
        self.simulcast = !rids.is_empty();
        true
    }

    pub fn is_simulcast(&self) -> bool {
        self.simulcast
    }

    /// Video the SFU can find keyframes in: subscribers start on a keyframe, layer switches
    /// wait for one, and keyframes can be asked for.
    pub fn has_keyframes(&self) -> bool {
        self.video_codec.is_some()
    }

    pub fn is_keyframe(&self, payload: &[u8]) -> bool {
        self.video_codec.is_some_and(|codec| is_keyframe(codec, payload))
    }

    /// The RFC 6464 level (0 loudest, 127 silence) a packet of this track carries.
    pub fn audio_level(&self, header: &rtc::rtp::header::Header) -> Option<u8> {
        let ext = header.get_extension(self.audio_level_ext?)?;
        ext.first().map(|level| level & 0x7f)
    }

    /// The timestamp step put between the last frame of one layer and the first of the next.
    pub fn frame_gap(&self) -> u32 {
        self.codec.clock_rate / 30
    }

    /// The best layer at or below `allowed`, else the lowest there is.
    pub fn pick(&self, allowed: Layer) -> u32 {
        let by_layer = |e: &&Encoding| (e.layer, e.ssrc);
        let best = self
            .encodings
            .iter()
            .filter(|e| e.layer <= allowed)
            .max_by_key(by_layer);
        best.or_else(|| self.encodings.iter().min_by_key(by_layer))
            .map(|e| e.ssrc)
            .expect("a publication has an encoding from the start")
    }

    /// The source SSRCs a keyframe request for `layers` names.
    pub fn ssrcs(&self, layers: KeyframeLayers) -> Vec<u32> {
        match layers {
            KeyframeLayers::None => Vec::new(),
            KeyframeLayers::All => self.encodings.iter().map(|e| e.ssrc).collect(),
            KeyframeLayers::Layers(ssrcs) => ssrcs,
        }
    }
}

/// The layers a keyframe request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum KeyframeLayers {
    #[default]
    None,
    All,
    Layers(Vec<u32>),
}

impl KeyframeLayers {
    /// Adds a request for layer `ssrc` (`None`: every layer).
    fn merge(&mut self, ssrc: Option<u32>) {
        match (&mut *self, ssrc) {
            (Self::All, _) => {}
            (_, None) => *self = Self::All,
            (Self::None, Some(ssrc)) => *self = Self::Layers(vec![ssrc]),
            (Self::Layers(layers), Some(ssrc)) => {
                if !layers.contains(&ssrc) {
                    layers.push(ssrc);
                }
            }
        }
    }
}

/// At most one keyframe request per track goes to its publisher per interval; requests within
/// it are merged and sent when it ends, so none is lost.
#[derive(Debug, Default)]
pub(crate) struct KeyframeThrottle {
    last_request: Option<Instant>,
    /// Asked for within the interval, sent when it ends.
    held: KeyframeLayers,
}

impl KeyframeThrottle {
    /// A request for layer `ssrc` (`None`: every layer), at least `gap` after the last one.
    /// Returns what to send now (with whatever was held back), or `None` when it is held.
    pub fn request(&mut self, now: Instant, ssrc: Option<u32>, gap: Duration) -> Option<KeyframeLayers> {
        self.held.merge(ssrc);
        if self
            .last_request
            .is_some_and(|at| now.saturating_duration_since(at) < gap)
        {
            return None;
        }
        Some(self.sent(now))
    }

    /// A request goes out now; returns the layers it names (all it held back).
    pub fn sent(&mut self, now: Instant) -> KeyframeLayers {
        self.last_request = Some(now);
        std::mem::take(&mut self.held)
    }

    pub fn last_request(&self) -> Option<Instant> {
        self.last_request
    }

    /// When the held-back request is due, with `interval` between requests.
    pub fn due(&self, interval: Duration) -> Option<Instant> {
        if self.held == KeyframeLayers::None {
            return None;
        }
        self.last_request.map(|at| at + interval)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one real `Instant` as the virtual clock's epoch
mod tests {
    use super::*;

    #[test]
    fn requests_within_the_interval_are_merged_and_held() {
        let t0 = Instant::now();
        let gap = Duration::from_millis(500);
        let mut throttle = KeyframeThrottle::default();
        assert_eq!(
            throttle.request(t0, Some(7), gap),
            Some(KeyframeLayers::Layers(vec![7]))
        );
        assert_eq!(throttle.due(gap), None);
        assert_eq!(throttle.request(t0 + gap / 5, Some(8), gap), None);
        assert_eq!(throttle.request(t0 + gap / 4, Some(8), gap), None);
        assert_eq!(throttle.due(gap), Some(t0 + gap));
        assert_eq!(throttle.sent(t0 + gap), KeyframeLayers::Layers(vec![8]));
        assert_eq!(throttle.request(t0 + gap, Some(7), gap), None);
        assert_eq!(throttle.request(t0 + gap, None, gap), None, "every layer");
        assert_eq!(throttle.request(t0 + 2 * gap, Some(9), gap), Some(KeyframeLayers::All));
    }

    #[test]
    fn the_best_allowed_layer_is_picked() {
        let codec = RTCRtpCodec {
            mime_type: "video/VP8".into(),
            clock_rate: 90_000,
            ..Default::default()
        };
        let track = OpenedTrack {
            source: TrackSource::Camera,
            kind: TrackKind::Video,
            codec,
            audio_level_ext: None,
        };
        let mut p = Publication::new(
            ParticipantId(1),
            RTCRtpReceiverId::default(),
            track,
            30,
            Some("f".into()),
        );
        assert_eq!(p.pick(Layer::Low), 30, "the only layer known");
        assert!(p.add_encoding(10, Some("q".into())));
        assert!(!p.add_encoding(10, Some("q".into())));
        assert!(p.add_encoding(20, Some("h".into())));
        assert!(p.is_simulcast() && p.has_keyframes());
        assert_eq!(p.pick(Layer::High), 30);
        assert_eq!(p.pick(Layer::Medium), 20);
        assert_eq!(p.pick(Layer::Low), 10);
        assert_eq!(p.ssrcs(KeyframeLayers::All), vec![30, 10, 20]);
    }
}
