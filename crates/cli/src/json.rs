//! Proto3 JSON for the command line, through the contract's own descriptors (prost-reflect).

use std::sync::OnceLock;

use anyhow::Context as _;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use timpora_proto::v1::{Event, PublishRequest};

fn pool() -> anyhow::Result<&'static DescriptorPool> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(timpora_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| anyhow::anyhow!("contract descriptors: {e}"))
}

fn descriptor(name: &str) -> anyhow::Result<prost_reflect::MessageDescriptor> {
    pool()?
        .get_message_by_name(name)
        .with_context(|| format!("no message {name} in the contract"))
}

/// Parse one proto3 JSON value as message `name` into `M`.
pub fn from_value<M: Message + Default>(name: &str, value: serde_json::Value) -> anyhow::Result<M> {
    let dynamic = DynamicMessage::deserialize(descriptor(name)?, value)?;
    Ok(M::decode(dynamic.encode_to_vec().as_slice())?)
}

/// Render `m` (a message named `name`) as proto3 JSON.
pub fn to_value<M: Message>(name: &str, m: &M) -> anyhow::Result<serde_json::Value> {
    let dynamic = DynamicMessage::decode(descriptor(name)?, m.encode_to_vec().as_slice())?;
    Ok(serde_json::to_value(&dynamic)?)
}

/// One NDJSON line of `timpora publish`: a `PublishRequest` (`{"event": {...}}`) or a bare
/// `Event`.
pub fn parse_publish_line(line: &str) -> anyhow::Result<Event> {
    let value: serde_json::Value = serde_json::from_str(line).context("not valid JSON")?;
    let is_request = value.as_object().is_some_and(|o| o.contains_key("event"));
    if is_request {
        let req: PublishRequest = from_value("timpora.v1.PublishRequest", value)?;
        req.event.context("PublishRequest without an event")
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
            format!("{:#}", parse_publish_line("{nope").unwrap_err()).contains("not valid JSON")
        );
        let unknown = format!("{:#}", parse_publish_line(r#"{"idd":"x"}"#).unwrap_err());
        assert!(unknown.contains("idd"), "{unknown}");
        let back = to_value("timpora.v1.Event", &bare).unwrap();
        assert_eq!(back["id"], "b-1");
    }
}
