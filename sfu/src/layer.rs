//! Simulcast layers: naming them from their RIDs.

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
}
