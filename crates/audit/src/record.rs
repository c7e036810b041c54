//! A stored record as a replay writes it, and back: one JSON object per line with the stream,
//! sequence, stored time (RFC 3339, nanoseconds), subject, headers and payload (base64) — or a
//! CloudEvents 1.0 event whose `timpora…` extensions carry the same — so that a replay file is
//! enough to recompute every leaf.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use timpora_bus::StoredMessage;
use timpora_proto::v1::{StoredHeader, StoredRecord};

use crate::error::Error;

fn timestamp(nanos: u64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX),
        nanos: (nanos % 1_000_000_000) as i32,
    }
}

/// The stored time as RFC 3339 with nanoseconds.
fn rfc3339(nanos: u64) -> String {
    timestamp(nanos).to_string()
}

/// A record as the contract carries it (`AuditService.Replay`): headers in name order.
pub fn stored_record(m: StoredMessage) -> StoredRecord {
    let mut headers: Vec<StoredHeader> = m
        .headers
        .into_iter()
        .map(|(name, value)| StoredHeader { name, value })
        .collect();
    headers.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    StoredRecord {
        stream: m.stream,
        sequence: m.sequence,
        stored: Some(timestamp(m.stored_nanos)),
        subject: m.subject,
        headers,
        payload: m.payload.to_vec(),
    }
}

/// A record the contract carried, as its stream stored it.
pub fn stored_message(r: StoredRecord) -> StoredMessage {
    StoredMessage {
        stream: r.stream,
        sequence: r.sequence,
        stored_nanos: r.stored.map_or(0, |t| {
            u64::try_from(t.seconds).unwrap_or(0) * 1_000_000_000
                + u64::try_from(t.nanos).unwrap_or(0)
        }),
        subject: r.subject,
        headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
        payload: r.payload.into(),
        pending: 0,
    }
}

/// The record's fields as a replay line writes them.
pub fn record_json(m: &StoredMessage) -> serde_json::Value {
    serde_json::json!({
        "stream": m.stream,
        "sequence": m.sequence,
        "stored": rfc3339(m.stored_nanos),
        "subject": m.subject,
        "headers": m.headers.iter().map(|(n, v)| [n, v]).collect::<Vec<_>>(),
        "payload": B64.encode(&m.payload),
    })
}

/// A record as a CloudEvents 1.0 event (structured mode) of `log` (`events`, `alerts`,
/// `access`): `id` the sequence, `source` `/timpora/<log>`, `type` the event type, `time` the
/// stored time, `data_base64` the payload, and the rest in `timpora…` extensions — the headers
/// as the transparency log's canonical block — so that the leaf can be recomputed from it.
pub fn cloudevent_json(m: &StoredMessage, log: &str) -> serde_json::Value {
    let header = |name: &str| {
        m.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let kind = match log {
        "events" => header("Timpora-Type").unwrap_or_else(|| "timpora.event".into()),
        "alerts" if m.subject.contains(".raised.") => "timpora.alert.v1".into(),
        "alerts" => "timpora.alert.transition.v1".into(),
        _ => "timpora.access.v1".into(),
    };
    let block: String = m
        .headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\n"))
        .collect();
    serde_json::json!({
        "specversion": "1.0",
        "id": m.sequence.to_string(),
        "source": format!("/timpora/{log}"),
        "type": kind,
        "subject": m.subject,
        "time": rfc3339(m.stored_nanos),
        "datacontenttype": "application/protobuf",
        "data_base64": B64.encode(&m.payload),
        "timporastream": m.stream,
        "timporasequence": m.sequence,
        "timporamsgid": header("Nats-Msg-Id").unwrap_or_default(),
        "timporaheaders": block,
    })
}

/// A record read back from a replay line (this module's form, or CloudEvents).
pub fn record_from_json(v: &serde_json::Value) -> Result<StoredMessage, Error> {
    let bad = |what: &str| Error::Proof(format!("not a replayed record: {what}"));
    let text = |k: &str| v.get(k).and_then(|x| x.as_str());
    let cloud = v.get("specversion").is_some();
    let (stream, sequence, stored, payload) = match cloud {
        true => (
            text("timporastream"),
            v.get("timporasequence").and_then(serde_json::Value::as_u64),
            text("time"),
            text("data_base64"),
        ),
        false => (
            text("stream"),
            v.get("sequence").and_then(serde_json::Value::as_u64),
            text("stored"),
            text("payload"),
        ),
    };
    let stored: prost_types::Timestamp = stored
        .ok_or_else(|| bad("no stored time"))?
        .parse()
        .map_err(|_| bad("the stored time is not RFC 3339"))?;
    let stored_nanos = u64::try_from(stored.seconds)
        .ok()
        .and_then(|s| s.checked_mul(1_000_000_000))
        .and_then(|s| s.checked_add(u64::try_from(stored.nanos).ok()?))
        .ok_or_else(|| bad("the stored time is out of range"))?;
    let headers = match cloud {
        true => text("timporaheaders")
            .unwrap_or_default()
            .lines()
            .map(|l| {
                l.split_once(": ")
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .ok_or_else(|| bad("a header line is not `name: value`"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        false => v
            .get("headers")
            .and_then(serde_json::Value::as_array)
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        match (
                            h.get(0).and_then(|x| x.as_str()),
                            h.get(1).and_then(|x| x.as_str()),
                        ) {
                            (Some(n), Some(v)) => Ok((n.to_owned(), v.to_owned())),
                            _ => Err(bad("a header is not [name, value]")),
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default(),
    };
    Ok(StoredMessage {
        stream: stream.ok_or_else(|| bad("no stream"))?.to_owned(),
        sequence: sequence.ok_or_else(|| bad("no sequence"))?,
        stored_nanos,
        subject: text("subject").ok_or_else(|| bad("no subject"))?.to_owned(),
        headers,
        payload: B64
            .decode(payload.ok_or_else(|| bad("no payload"))?)
            .map_err(|_| bad("the payload is not base64"))?
            .into(),
        pending: u64::MAX,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_its_json_and_cloudevents_forms() {
        let m = StoredMessage {
            stream: "TIMPORA_EVENTS".into(),
            sequence: 42,
            stored_nanos: 1_764_633_600_123_456_789,
            subject: "timpora.events.imigrasi.x.74".into(),
            headers: vec![
                ("Nats-Msg-Id".into(), "a/b".into()),
                ("Timpora-Type".into(), "t".into()),
            ],
            payload: bytes::Bytes::from_static(b"\x01\x02payload"),
            pending: 0,
        };
        let back = record_from_json(&record_json(&m)).unwrap();
        assert_eq!(timpora_sealer::leaf(&back), timpora_sealer::leaf(&m));
        let cloud = serde_json::json!({
            "specversion": "1.0",
            "time": "2025-12-02T00:00:00.123456789Z",
            "subject": m.subject,
            "data_base64": B64.encode(&m.payload),
            "timporastream": m.stream,
            "timporasequence": 42,
            "timporaheaders": "Nats-Msg-Id: a/b\nTimpora-Type: t\n",
        });
        let back = record_from_json(&cloud).unwrap();
        assert_eq!(timpora_sealer::leaf(&back), timpora_sealer::leaf(&m));
        assert!(record_from_json(&serde_json::json!({"stream": "x"})).is_err());
    }
}
