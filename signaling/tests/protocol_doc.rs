//! The protocol and its document cannot drift: every event in [`catalog`] is documented in
//! `docs/socket-events.md` with exactly its payload's fields (and, where the document gives
//! one, its ack's), and every event the document names is in the catalog.

use std::collections::{BTreeMap, BTreeSet};

use huddle_signaling::protocol::{Direction, SchemaOf, catalog};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

const DOC: &str = include_str!("../../docs/socket-events.md");

type Fields = BTreeSet<String>;

/// The top-level field names a payload type serializes.
fn fields_of(schema: SchemaOf) -> Fields {
    match schema() {
        RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
        _ => panic!("every payload is a JSON object"),
    }
}

/// The backticked words of a piece of Markdown.
fn ticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The field names of the first `{ … }` in `text`, at its top level: `{ a, b?: { c }, d: "x" | "y" }`
/// gives `a`, `b`, `d`.
fn braced_fields(text: &str) -> Option<Fields> {
    let start = text.find('{')?;
    let (mut depth, mut fields, mut token) = (0, Fields::new(), String::new());
    for c in text[start..].chars() {
        match c {
            '{' => {
                depth += 1;
                if depth > 1 {
                    token.push(c);
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    fields.extend(field_name(&token));
                    return Some(fields);
                }
                token.push(c);
            }
            ',' if depth == 1 => fields.extend(field_name(&std::mem::take(&mut token))),
            _ => token.push(c),
        }
    }
    None
}

fn field_name(token: &str) -> Option<String> {
    let name: String = token
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// A Markdown table's rows as cells, from the line after its header separator.
fn rows<'a>(lines: &[&'a str], from: usize) -> Vec<Vec<&'a str>> {
    lines[from..]
        .iter()
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            // Split on `|` that is not escaped (`\|` stands for "or" inside a cell).
            let mut cells = Vec::new();
            let mut start = 1;
            let bytes = l.as_bytes();
            for i in 1..bytes.len() {
                if bytes[i] == b'|' && bytes[i - 1] != b'\\' {
                    cells.push(l[start..i].trim());
                    start = i + 1;
                }
            }
            cells
        })
        .collect()
}

/// What the document says about each payload.
#[derive(Default)]
struct Documented {
    /// Named types (section 5 and `### CallView`): their fields.
    views: BTreeMap<String, Fields>,
    /// (event, direction) → payload fields, from each place that defines it.
    payloads: BTreeMap<(String, bool), Vec<Fields>>,
    /// (request event) → ack fields, where a table gives them.
    acks: BTreeMap<String, Vec<Fields>>,
}

/// A table cell describing a payload: `{ … }` or the name of a documented type.
enum Cell {
    Fields(Fields),
    View(String),
}

fn cell(text: &str) -> Option<Cell> {
    let trimmed = text.trim_start();
    if trimmed.starts_with("`{") || trimmed.starts_with('{') {
        return braced_fields(text).map(Cell::Fields);
    }
    let first = ticked(text).into_iter().next()?;
    first
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase())
        .then(|| Cell::View(first.to_string()))
}

fn read_doc() -> Documented {
    let lines: Vec<&str> = DOC.lines().collect();
    let mut doc = Documented::default();
    let mut heading_events: Vec<String> = Vec::new();
    let mut heading_view: Option<String> = None;
    let mut pending: Vec<(bool, String, Cell)> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(title) = line.strip_prefix("### ") {
            heading_events = ticked(title)
                .into_iter()
                .filter(|t| t.contains(':'))
                .map(String::from)
                .collect();
            let bare = title.trim();
            heading_view = (bare.chars().all(|c| c.is_ascii_alphanumeric())
                && bare.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
            .then(|| bare.to_string());
            // A type given inline, not as a table (`{ _id, chatId, … }` below its heading).
            if let Some(view) = &heading_view {
                let body: String = lines[i + 1..]
                    .iter()
                    .take_while(|l| !l.starts_with('#'))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
                if !body.contains("| Field") {
                    let fields = braced_fields(&body).unwrap_or_else(|| panic!("### {view}: no fields"));
                    doc.views.insert(view.clone(), fields);
                }
            }
        } else if line.starts_with("## ") {
            heading_events.clear();
            heading_view = None;
        } else if line.starts_with("| Field") && i + 1 < lines.len() {
            let names: Fields = rows(&lines, i + 2)
                .iter()
                .flat_map(|r| ticked(r[0]))
                .filter(|n| !n.contains('.') && !n.contains('['))
                .map(String::from)
                .collect();
            if let Some(view) = &heading_view {
                doc.views.insert(view.clone(), names.clone());
            }
            for event in &heading_events {
                doc.payloads
                    .entry((event.clone(), true))
                    .or_default()
                    .push(names.clone());
            }
        } else if line.starts_with("| Event | Payload") {
            let request = line.contains("Ack");
            for row in rows(&lines, i + 2) {
                let events: Vec<&str> = ticked(row[0])
                    .into_iter()
                    .filter(|t| t.contains(':') || !t.contains(' '))
                    .collect();
                for event in events {
                    if let Some(payload) = cell(row[1]) {
                        pending.push((request, event.to_string(), payload));
                    }
                    if request && let Some(ack) = row.get(2).and_then(|a| cell(a)) {
                        pending.push((true, format!("ack {event}"), ack));
                    }
                }
            }
        }
        i += 1;
    }
    for (request, event, payload) in pending {
        let fields = match payload {
            Cell::Fields(f) => f,
            Cell::View(name) => doc
                .views
                .get(&name)
                .unwrap_or_else(|| panic!("{event}: the document names `{name}` but does not describe it"))
                .clone(),
        };
        match event.strip_prefix("ack ") {
            Some(event) => doc.acks.entry(event.to_string()).or_default().push(fields),
            None => doc.payloads.entry((event, request)).or_default().push(fields),
        }
    }
    doc
}

#[test]
fn every_event_is_documented_with_exactly_its_fields() {
    let doc = read_doc();
    let mut problems = Vec::new();
    for spec in catalog() {
        let request = spec.direction == Direction::Request;
        let side = if request { "request" } else { "server event" };
        let fields = fields_of(spec.payload);
        match doc.payloads.get(&(spec.name.to_string(), request)) {
            None => problems.push(format!("{side} `{}` is not in docs/socket-events.md", spec.name)),
            Some(places) => {
                for documented in places {
                    if *documented != fields {
                        problems.push(format!(
                            "{side} `{}`: the document lists {documented:?}, the payload has {fields:?}",
                            spec.name
                        ));
                    }
                }
            }
        }
        if let (Some(ack), Some(places)) = (spec.ack, doc.acks.get(spec.name)) {
            let fields = fields_of(ack);
            for documented in places {
                if *documented != fields {
                    problems.push(format!(
                        "ack of `{}`: the document lists {documented:?}, the ack has {fields:?}",
                        spec.name
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "protocol and document differ:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_document_names_no_event_the_protocol_lacks() {
    let doc = read_doc();
    let known: BTreeSet<(String, bool)> = catalog()
        .iter()
        .map(|s| (s.name.to_string(), s.direction == Direction::Request))
        .collect();
    let extra: Vec<_> = doc.payloads.keys().filter(|k| !known.contains(*k)).collect();
    assert!(extra.is_empty(), "documented but not in the protocol: {extra:?}");
}

#[test]
fn the_reader_sees_a_changed_field() {
    // The check above is only as good as the reader: a payload with one field renamed must
    // not match what the document says.
    let doc = read_doc();
    let documented = &doc.payloads[&("call:speaker".to_string(), false)][0];
    assert_eq!(documented, &Fields::from(["callId".to_string(), "userId".to_string()]));
    let renamed = Fields::from(["callId".to_string(), "speakerId".to_string()]);
    assert_ne!(documented, &renamed);
    assert!(doc.views["MessageView"].contains("clientMsgId"));
    assert!(doc.views["AiMessageView"].contains("questionId"));
}
