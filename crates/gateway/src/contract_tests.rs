//! The contract's words kept in step with the gateway's checks: every field the gateway
//! requires says `Required.` in its `.proto` comment, and every field whose comment says so is
//! required — found by checking an empty event of every type, as an integrator's first request
//! would be.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use timpora_proto::v1::event::Payload;
use timpora_proto::v1::*;

use crate::error::Error;
use crate::identity::Identity;
use crate::ingest::{Paths, Preparer};
use crate::policy::Policy;
use crate::pseudo::{KeyConfig, PseudonymConfig, Pseudonymiser};
use crate::validate::Limits;

/// A field of a message in the `.proto` files: its type and its comment.
#[derive(Debug)]
struct ProtoField {
    ty: String,
    comment: String,
}

/// Every message field of `proto/timpora/v1`, by (message, field).
fn proto_fields() -> BTreeMap<(String, String), ProtoField> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/timpora/v1");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        // The enclosing blocks: (kind, name).
        let mut blocks: Vec<(String, String)> = Vec::new();
        let mut comment: Vec<String> = Vec::new();
        for line in text.lines().map(str::trim) {
            if let Some(c) = line.strip_prefix("//") {
                comment.push(c.trim().to_owned());
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [
                    kind @ ("message" | "enum" | "oneof" | "service"),
                    name,
                    "{",
                    ..,
                ] => {
                    blocks.push(((*kind).to_owned(), (*name).to_owned()));
                }
                ["}"] => {
                    blocks.pop();
                }
                _ if line.ends_with(';') && line.contains('=') => {
                    let message = blocks.iter().rev().find(|(k, _)| k == "message");
                    let in_enum = blocks.last().is_some_and(|(k, _)| k == "enum");
                    let decl: Vec<&str> = line
                        .split('=')
                        .next()
                        .unwrap()
                        .split_whitespace()
                        .filter(|w| *w != "repeated")
                        .collect();
                    if let (Some((_, m)), false, [ty, name]) = (message, in_enum, decl.as_slice()) {
                        out.insert(
                            (m.clone(), (*name).to_owned()),
                            ProtoField {
                                ty: (*ty).to_owned(),
                                comment: comment.join(" "),
                            },
                        );
                    }
                }
                _ => {}
            }
            comment.clear();
        }
    }
    out
}

/// The `(message, field)` a violation path such as `event.passport_interview.applicant` names.
fn resolve(
    fields: &BTreeMap<(String, String), ProtoField>,
    path: &str,
) -> Option<(String, String)> {
    let mut message = "Event".to_owned();
    let mut segments = path.strip_prefix("event.")?.split('.').peekable();
    while let Some(seg) = segments.next() {
        let name = seg.split('[').next().unwrap_or(seg);
        let f = fields.get(&(message.clone(), name.to_owned()))?;
        if segments.peek().is_none() {
            return Some((message, name.to_owned()));
        }
        message = f.ty.clone();
    }
    None
}

fn every_payload() -> Vec<Payload> {
    vec![
        Payload::PassportInterview(Default::default()),
        Payload::DepartureCheck(Default::default()),
        Payload::CpmiStatus(Default::default()),
        Payload::Repatriation(Default::default()),
        Payload::Recommendation(Default::default()),
        Payload::CompanyLicence(Default::default()),
        Payload::CommunityReport(Default::default()),
        Payload::RecruiterReport(Default::default()),
        Payload::Investigation(Default::default()),
        Payload::VictimService(Default::default()),
        Payload::Prosecution(Default::default()),
        Payload::CaseStatusChanged(Default::default()),
    ]
}

/// The paths the gateway reports as required for an empty event of every type.
fn required_paths() -> BTreeSet<String> {
    let pseudo = Pseudonymiser::from_config(&PseudonymConfig {
        active_version: None,
        keys: vec![KeyConfig {
            version: 1,
            key_file: None,
            key_hex: Some("cd".repeat(32)),
        }],
    })
    .unwrap();
    let preparer = Preparer::new(
        Arc::new(Policy::default()),
        Arc::new(pseudo),
        Limits::default(),
    );
    let mut out = BTreeSet::new();
    for payload in every_payload() {
        let info = timpora_proto::type_of(&payload);
        let (agency, field) = match info.domain {
            "case" => ("polri", "case_status_changed"),
            d => (d, info.short),
        };
        let who = Identity::parse(&format!("{agency}/contract-test")).unwrap();
        let paths = Paths {
            meta: "event.",
            payload_parent: "event.",
            payload: field,
        };
        let ev = Event {
            payload: Some(payload),
            ..Default::default()
        };
        match preparer.prepare(&who, ev, &paths, String::new()) {
            Err(Error::Invalid(vs)) => out.extend(
                vs.iter()
                    .filter(|(_, why)| why.starts_with("required"))
                    .map(|(f, _)| f.clone()),
            ),
            other => panic!("an empty {} was not refused: {other:?}", info.name),
        }
    }
    out
}

#[test]
fn every_required_field_says_so_in_the_contract_and_no_other_does() {
    let fields = proto_fields();
    assert!(
        fields.len() > 100,
        "the parser found {} fields",
        fields.len()
    );
    let required = required_paths();
    assert!(
        required.contains("event.passport_interview.applicant"),
        "{required:?}"
    );
    let mut required_fields = BTreeSet::new();
    let mut unmarked = Vec::new();
    for path in &required {
        let key = resolve(&fields, path).unwrap_or_else(|| panic!("{path}: no such field"));
        if !fields[&key].comment.starts_with("Required.") {
            unmarked.push(format!("{}.{} ({path})", key.0, key.1));
        }
        required_fields.insert(key);
    }
    assert!(
        unmarked.is_empty(),
        "required by the gateway, but the comment does not start with `Required.`: {unmarked:#?}"
    );
    // An agency service's `meta` is the envelope's `event.` fields under another name.
    let required_as = |(m, f): &(String, String)| match m.as_str() {
        "EventMeta" => required_fields.contains(&("Event".to_owned(), f.clone())),
        _ => required_fields.contains(&(m.clone(), f.clone())),
    };
    for f in ["id", "time", "region"] {
        assert!(
            fields[&("EventMeta".to_owned(), f.to_owned())]
                .comment
                .starts_with("Required."),
            "EventMeta.{f}"
        );
    }
    let overstated: Vec<String> = fields
        .iter()
        .filter(|(k, f)| f.comment.starts_with("Required.") && !required_as(k))
        .map(|(k, _)| format!("{}.{}", k.0, k.1))
        .collect();
    assert!(
        overstated.is_empty(),
        "marked `Required.` but an empty event passes without it: {overstated:#?}"
    );
}
