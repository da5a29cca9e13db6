//! Simulcast layers: naming them from their RIDs, and which one a down track forwards while
//! it switches from one to another.

use huddle_signaling::Layer;

/// Names a simulcast layer from its RID, given every RID the track announced. Browsers and
/// libraries use `q/h/f` (quarter, half, full), `l/m/h` or `0/1/2`; unknown names are ranked by
/// their order among the track's RIDs.
pub fn layer_of(rid: &str, all: &[String]) -> Layer {
    let quarter_half_full = all.iter().any(|r| r == "q" || r == "f");
    match rid {
        "q" | "l" | "low" | "0" => Layer::Low,
        "m" | "mid" | "medium" | "1" => Layer::Medium,
        "h" if quarter_half_full => Layer::Medium,
        "f" | "h" | "high" | "full" | "2" => Layer::High,
        _ => match all.iter().position(|r| r == rid) {
            Some(0) => Layer::Low,
            Some(1) => Layer::Medium,
            _ => Layer::High,
        },
    }
}

/// Which layer (source SSRC) of a simulcast track a down track forwards. A switch waits for a
/// keyframe of the new layer, since the subscriber could not decode what follows before it;
/// until then the old layer goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerSwitch {
    /// No layer chosen yet.
    #[default]
    Unset,
    /// Forwarding `from` (nothing, at the start) until `to` sends a keyframe.
    Switching {
        from: Option<u32>,
        to: u32,
    },
    Steady(u32),
}

/// What becomes of one packet of a simulcast track on a down track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Forward,
    /// Forward it: it is the keyframe the pending switch waited for, and the stream now comes
    /// from another source.
    Switched,
    Drop,
}

impl LayerSwitch {
    /// The layer forwarded now.
    pub fn current(self) -> Option<u32> {
        match self {
            Self::Unset => None,
            Self::Switching { from, .. } => from,
            Self::Steady(ssrc) => Some(ssrc),
        }
    }

    /// The layer chosen, forwarded once it sends a keyframe.
    pub fn target(self) -> Option<u32> {
        match self {
            Self::Unset => None,
            Self::Switching { to, .. } => Some(to),
            Self::Steady(ssrc) => Some(ssrc),
        }
    }

    /// Chooses layer `to`. Returns true when the choice changed.
    pub fn retarget(&mut self, to: u32) -> bool {
        if self.target() == Some(to) {
            return false;
        }
        let from = self.current();
        *self = if from == Some(to) {
            Self::Steady(to)
        } else {
            Self::Switching { from, to }
        };
        true
    }

    /// Whether a packet of layer `ssrc` goes on; the switch happens on the target's keyframe.
    pub fn admit(&mut self, ssrc: u32, keyframe: bool) -> Admit {
        match *self {
            Self::Switching { to, .. } if to == ssrc && keyframe => {
                *self = Self::Steady(to);
                Admit::Switched
            }
            _ if self.current() == Some(ssrc) => Admit::Forward,
            _ => Admit::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_named_from_common_rid_schemes() {
        let qhf: Vec<String> = ["q", "h", "f"].map(String::from).into();
        let lmh: Vec<String> = ["l", "m", "h"].map(String::from).into();
        assert_eq!(layer_of("h", &qhf), Layer::Medium);
        assert_eq!(layer_of("h", &lmh), Layer::High);
        assert_eq!(layer_of("q", &qhf), Layer::Low);
        let odd: Vec<String> = ["a", "b", "c"].map(String::from).into();
        assert_eq!(layer_of("a", &odd), Layer::Low);
        assert_eq!(layer_of("b", &odd), Layer::Medium);
        assert_eq!(layer_of("c", &odd), Layer::High);
    }

    #[test]
    fn a_switch_waits_for_the_new_layers_keyframe() {
        let mut layer = LayerSwitch::default();
        assert_eq!(layer.admit(1, true), Admit::Drop, "nothing chosen yet");
        assert!(layer.retarget(1));
        assert!(!layer.retarget(1));
        assert_eq!(
            layer.admit(1, false),
            Admit::Drop,
            "the first layer starts on a keyframe too"
        );
        assert_eq!(layer.admit(1, true), Admit::Switched);
        assert_eq!(layer.admit(1, false), Admit::Forward);
        assert!(layer.retarget(2));
        assert_eq!((layer.current(), layer.target()), (Some(1), Some(2)));
        assert_eq!(layer.admit(2, false), Admit::Drop);
        assert_eq!(layer.admit(1, true), Admit::Forward, "the old layer goes on meanwhile");
        assert_eq!(layer.admit(2, true), Admit::Switched);
        assert_eq!(layer.admit(1, false), Admit::Drop);
        // Back to the layer still forwarded before its switch happened: no keyframe needed.
        assert!(layer.retarget(3));
        assert!(layer.retarget(2));
        assert_eq!(layer, LayerSwitch::Steady(2));
    }
}
