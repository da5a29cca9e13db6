//! Wire-shape tests for the protocol: camelCase JSON, unknown fields refused, limits enforced.

use huddle_signaling::protocol::{
    CallRef, CallStart, CallView, Direction, IceCandidate, MAX_ICE_CANDIDATE_BYTES, MAX_SDP_BYTES, SdpAnswer, SdpOffer,
    SfuOffer, TrackSourceEntry, Validate, catalog,
};
use huddle_signaling::{CallKind, CallStatus, EndReason, SignalingError, TrackSource};

const CALL: &str = "65a1f0c2e4b0a1b2c3d4e5f6";

fn sdp_of_len(len: usize) -> String {
    let mut sdp = String::from("v=0\r\n");
    sdp.push_str(&"a".repeat(len - sdp.len()));
    sdp
}

#[test]
fn call_start_parses_camel_case_and_refuses_unknown_fields() {
    let start: CallStart = serde_json::from_str(r#"{"chatId":"65a1f0c2e4b0a1b2c3d4e5f7","type":"video"}"#).unwrap();
    assert_eq!(start.kind, CallKind::Video);
    assert_eq!(start.validate(), Ok(()));

    // A client cannot smuggle its own invitee list or a Mongo operator in.
    let extra = r#"{"chatId":"x","type":"audio","invitees":["y"]}"#;
    assert!(serde_json::from_str::<CallStart>(extra).is_err());
    let operator = r#"{"chatId":{"$ne":null},"type":"audio"}"#;
    assert!(serde_json::from_str::<CallStart>(operator).is_err());
    let snake = r#"{"chat_id":"x","type":"audio"}"#;
    assert!(serde_json::from_str::<CallStart>(snake).is_err());
    let kind = r#"{"chatId":"x","type":"hologram"}"#;
    assert!(serde_json::from_str::<CallStart>(kind).is_err());
    let old_name = r#"{"chatId":"x","kind":"audio"}"#;
    assert!(
        serde_json::from_str::<CallStart>(old_name).is_err(),
        "the field is `type`"
    );
}

#[test]
fn empty_or_odd_ids_are_refused() {
    let empty = CallRef { call_id: String::new() };
    assert_eq!(empty.validate(), Err(SignalingError::EmptyField { field: "callId" }));
    assert_eq!(empty.validate().unwrap_err().code().as_str(), "empty_field");

    let spaced = CallRef { call_id: "a b".into() };
    assert_eq!(spaced.validate(), Err(SignalingError::InvalidId { field: "callId" }));

    let chat = CallStart {
        chat_id: String::new(),
        kind: CallKind::Audio,
    };
    assert_eq!(chat.validate(), Err(SignalingError::EmptyField { field: "chatId" }));

    assert_eq!(CallRef { call_id: CALL.into() }.validate(), Ok(()));
}

#[test]
fn oversize_sdp_is_refused() {
    let ok = SdpOffer {
        call_id: CALL.into(),
        sdp: sdp_of_len(MAX_SDP_BYTES),
        sources: Vec::new(),
    };
    assert_eq!(ok.validate(), Ok(()), "exactly the limit is fine");

    let big = SdpOffer {
        call_id: CALL.into(),
        sdp: sdp_of_len(MAX_SDP_BYTES + 1),
        sources: Vec::new(),
    };
    let err = big.validate().unwrap_err();
    assert_eq!(
        err,
        SignalingError::SdpTooLarge {
            len: MAX_SDP_BYTES + 1,
            max: MAX_SDP_BYTES
        }
    );
    assert_eq!(err.code().as_str(), "sdp_too_large");

    let answer = SdpAnswer {
        call_id: CALL.into(),
        sdp: sdp_of_len(100 * 1024),
        offer_id: 1,
    };
    assert!(matches!(answer.validate(), Err(SignalingError::SdpTooLarge { .. })));
}

#[test]
fn sdp_must_look_like_sdp() {
    let empty = SdpAnswer {
        call_id: CALL.into(),
        sdp: String::new(),
        offer_id: 1,
    };
    assert_eq!(empty.validate(), Err(SignalingError::EmptyField { field: "sdp" }));
    let junk = SdpOffer {
        call_id: CALL.into(),
        sdp: "<script>".into(),
        sources: Vec::new(),
    };
    assert_eq!(junk.validate(), Err(SignalingError::MalformedSdp));
    let no_call = SdpOffer {
        call_id: String::new(),
        sdp: sdp_of_len(10),
        sources: Vec::new(),
    };
    assert_eq!(no_call.validate(), Err(SignalingError::EmptyField { field: "callId" }));
}

#[test]
fn offers_describe_at_most_four_sources_and_answers_name_their_offer() {
    let json = r#"{"callId":"c1","sdp":"v=0\r\n","sources":[{"trackId":"mic-1","source":"microphone"},{"trackId":"scr","source":"screen"}]}"#;
    let offer: SdpOffer = serde_json::from_str(json).unwrap();
    assert_eq!(offer.sources[1].source, TrackSource::Screen);
    assert_eq!(offer.validate(), Ok(()));
    let mut many = offer.clone();
    many.sources = (0..5)
        .map(|i| TrackSourceEntry {
            track_id: format!("t{i}"),
            source: TrackSource::Camera,
        })
        .collect();
    assert_eq!(many.validate(), Err(SignalingError::TooManyTracks { max: 4 }));
    assert!(
        serde_json::from_str::<SdpOffer>(r#"{"callId":"c1","sdp":"v=0","sources":[{"trackId":"a","source":"radio"}]}"#)
            .is_err()
    );
    assert!(
        serde_json::from_str::<SdpAnswer>(r#"{"callId":"c1","sdp":"v=0"}"#).is_err(),
        "offerId is required"
    );
}

#[test]
fn ice_candidates_are_bounded_and_end_of_candidates_is_allowed() {
    let json = r#"{"callId":"c1","candidate":"candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host","sdpMid":"0","sdpMLineIndex":0}"#;
    let cand: IceCandidate = serde_json::from_str(json).unwrap();
    assert_eq!(cand.sdp_m_line_index, Some(0));
    assert_eq!(cand.validate(), Ok(()));

    let end: IceCandidate = serde_json::from_str(r#"{"callId":"c1","candidate":""}"#).unwrap();
    assert_eq!(end.validate(), Ok(()));

    let big = IceCandidate {
        call_id: "c1".into(),
        candidate: "a".repeat(MAX_ICE_CANDIDATE_BYTES + 1),
        sdp_mid: None,
        sdp_m_line_index: None,
    };
    assert!(matches!(big.validate(), Err(SignalingError::CandidateTooLarge { .. })));
}

#[test]
fn server_events_serialize_as_the_server_sends_them() {
    let started = "2026-01-02T03:04:05Z".parse().unwrap();
    let ended = CallView {
        id: "c1".into(),
        kind: CallKind::Audio,
        chat_id: "chat".into(),
        initiator: "alice".into(),
        participants: vec![],
        invited: vec!["bob".into()],
        status: CallStatus::Missed,
        end_reason: Some(EndReason::Timeout),
        started_at: started,
        answered_at: None,
        ended_at: Some(started),
    };
    assert_eq!(
        serde_json::to_value(&ended).unwrap(),
        serde_json::json!({
            "_id": "c1", "type": "audio", "chatId": "chat", "initiator": "alice", "participants": [],
            "invited": ["bob"], "status": "missed", "endReason": "timeout",
            "startedAt": "2026-01-02T03:04:05Z", "endedAt": "2026-01-02T03:04:05Z",
        })
    );
    let offer = SfuOffer {
        call_id: "c1".into(),
        offer_id: 3,
        sdp: "v=0".into(),
    };
    assert_eq!(
        serde_json::to_value(&offer).unwrap(),
        serde_json::json!({ "callId": "c1", "offerId": 3, "sdp": "v=0" })
    );
}

#[test]
fn events_are_named_entity_verb_and_each_is_defined_once() {
    let specs = catalog();
    for spec in &specs {
        let (entity, verb) = spec.name.split_once(':').unwrap_or((spec.name, "x"));
        assert!(!entity.is_empty() && !verb.is_empty(), "{}", spec.name);
    }
    let mut keys: Vec<_> = specs
        .iter()
        .map(|s| (s.name, s.direction == Direction::Request))
        .collect();
    keys.sort_unstable();
    let before = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), before, "no event is defined twice in one direction");
}
