//! Proto3 JSON of the contract's messages, through the contract's own descriptors
//! (prost-reflect): what the command line reads and prints, and what the console's page gets.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use timpora_proto::v1::{Event, PublishRequest};

use crate::error::Error;

fn pool() -> Result<&'static DescriptorPool, Error> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(timpora_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::Json(format!("contract descriptors: {e}")))
}

fn descriptor(name: &str) -> Result<prost_reflect::MessageDescriptor, Error> {
    pool()?
        .get_message_by_name(name)
        .ok_or_else(|| Error::Json(format!("no message {name} in the contract")))
}

/// Parse one proto3 JSON value as message `name` into `M`.
pub fn from_value<M: Message + Default>(name: &str, value: serde_json::Value) -> Result<M, Error> {
    let dynamic = DynamicMessage::deserialize(descriptor(name)?, value)
        .map_err(|e| Error::Json(e.to_string()))?;
    M::decode(dynamic.encode_to_vec().as_slice()).map_err(|e| Error::Json(e.to_string()))
}

/// Render `m` (a message named `name`) as proto3 JSON.
pub fn to_value<M: Message>(name: &str, m: &M) -> Result<serde_json::Value, Error> {
    let dynamic = DynamicMessage::decode(descriptor(name)?, m.encode_to_vec().as_slice())
        .map_err(|e| Error::Json(e.to_string()))?;
    serde_json::to_value(&dynamic).map_err(|e| Error::Json(e.to_string()))
}

/// One NDJSON line of `timpora publish`: a `PublishRequest` (`{"event": {...}}`) or a bare
/// `Event`.
pub fn parse_publish_line(line: &str) -> Result<Event, Error> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| Error::Json(format!("not valid JSON: {e}")))?;
    let is_request = value.as_object().is_some_and(|o| o.contains_key("event"));
    if is_request {
        let req: PublishRequest = from_value("timpora.v1.PublishRequest", value)?;
        req.event
            .ok_or_else(|| Error::Json("PublishRequest without an event".into()))
    } else {
        from_value("timpora.v1.Event", value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_as_request_or_event_and_errors_say_why() {
        let ev = parse_publish_line(
            r#"{"event":{"id":"a-1","time":"2026-01-02T03:04:05Z","region":"74.02","passportInterview":{"outcome":"INTERVIEW_OUTCOME_DEFERRED"}}}"#,
        )
        .unwrap();
        assert_eq!(ev.id, "a-1");
        assert_eq!(ev.time.unwrap().seconds, 1_767_323_045);
        let bare = parse_publish_line(
            r#"{"id":"b-1","community_report":{"village_code":"74.02.05.2001"}}"#,
        )
        .unwrap();
        assert_eq!(bare.id, "b-1");
        assert!(
            parse_publish_line("{nope")
                .unwrap_err()
                .to_string()
                .contains("not valid JSON")
        );
        let unknown = parse_publish_line(r#"{"idd":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("idd"), "{unknown}");
        let back = to_value("timpora.v1.Event", &bare).unwrap();
        assert_eq!(back["id"], "b-1");
    }
}
