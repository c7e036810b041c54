//! Provincial offices whose link to the centre drops: each runs a NATS leaf node with JetStream
//! in a domain of its own, where its gateway stores the local agencies' events in the office's
//! own events stream while the link is down. The centre keeps a **mirror** of each office's
//! stream and its events stream **sources** the mirrors: NATS's own machinery, nothing
//! forwarded by hand.
//!
//! Why a mirror in between: a mirror stores each origin message at the origin's sequence and
//! ignores any message at or below the last one it holds, so a consumer re-delivered after a
//! reconnect (nats-server 2.9 re-sends sourced messages when a leaf link comes back) cannot
//! store anything twice. The events stream then sources a stream in its own domain, over no
//! link that drops, and still drops a repeated event id within its duplicate window.
//!
//! Names and subjects kept apart: an office's streams and buckets are named after it
//! (`TIMPORA_EVENTS_SULTRA`…), its other subjects carry its name (`timpora.office.sultra.alerts`
//! …), and its events stream takes only its own regions' event subjects. Event subjects keep
//! their form (sourcing in nats-server 2.9 cannot rename subjects, and the correlator reads one
//! subject space), so the leaf link carries no event subject in either direction: the office's
//! user at the centre may only answer the mirror's requests and deliver to it
//! ([`Topology::leaf_permissions`]), and the office's side refuses the rest too
//! ([`Topology::leaf_remote_denies`]). A publish is therefore stored in exactly one domain.

use async_nats::jetstream::stream;

use crate::auth::Permissions;
use crate::error::{Error, ErrorKind, Result};
pub use crate::topology::Office;
use crate::topology::Topology;

/// Why `name` cannot name an office, if it cannot.
fn bad_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (!ok).then(|| {
        format!("office name {name:?}: use 1 to 32 lowercase letters and digits (e.g. \"sultra\")")
    })
}

/// Why `code` cannot be an office's region, if it cannot.
fn bad_region(code: &str) -> Option<String> {
    let ok = !code.is_empty()
        && code
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    (!ok).then(|| format!("office region {code:?}: a region code such as \"74\" or \"74.02\""))
}

fn invalid(detail: String) -> Error {
    Error::msg(ErrorKind::Refused, "office topology", detail)
}

impl Topology {
    /// The topology of office `office`: every stream, bucket and subject prefix named after it.
    pub fn for_office(office: Office) -> Result<Self> {
        Self {
            office: Some(office),
            ..Self::default()
        }
        .resolve()
    }

    /// Check the offices' settings, and name an office's streams, buckets and subject prefixes
    /// after it where they are left at their defaults. Idempotent.
    pub fn resolve(mut self) -> Result<Self> {
        for name in &self.offices {
            if let Some(e) = bad_name(name) {
                return Err(invalid(e));
            }
        }
        let Some(office) = self.office.clone() else {
            return Ok(self);
        };
        if !self.offices.is_empty() {
            return Err(invalid(
                "a topology is the centre's (with `offices`) or an office's (with `office`), \
                 not both"
                    .into(),
            ));
        }
        if let Some(e) = bad_name(&office.name) {
            return Err(invalid(e));
        }
        if office.regions.is_empty() {
            return Err(invalid(format!(
                "office {}: name the regions it serves",
                office.name
            )));
        }
        if let Some(e) = office.regions.iter().find_map(|r| bad_region(r)) {
            return Err(invalid(e));
        }
        let d = Topology::default();
        let suffix = office.name.to_uppercase();
        let rename = |field: &mut String, default: &str| {
            if field == default {
                *field = format!("{default}_{suffix}");
            }
        };
        rename(&mut self.events_stream, &d.events_stream);
        rename(&mut self.alerts_stream, &d.alerts_stream);
        rename(&mut self.access_stream, &d.access_stream);
        rename(&mut self.rules_bucket, &d.rules_bucket);
        rename(&mut self.checkpoint_bucket, &d.checkpoint_bucket);
        rename(&mut self.tlog_stream, &d.tlog_stream);
        rename(&mut self.tlog_bucket, &d.tlog_bucket);
        rename(&mut self.holds_bucket, &d.holds_bucket);
        rename(&mut self.holds_stream, &d.holds_stream);
        rename(&mut self.tiles_bucket, &d.tiles_bucket);
        rename(&mut self.correlators_bucket, &d.correlators_bucket);
        let local = |field: &mut String, default: &str| {
            if field == default {
                let kind = default.rsplit('.').next().unwrap_or(default);
                *field = format!("timpora.office.{}.{kind}", office.name);
            }
        };
        local(&mut self.alerts_subject_prefix, &d.alerts_subject_prefix);
        local(&mut self.access_subject_prefix, &d.access_subject_prefix);
        local(&mut self.tlog_subject_prefix, &d.tlog_subject_prefix);
        local(&mut self.holds_subject_prefix, &d.holds_subject_prefix);
        Ok(self)
    }

    /// The subjects of the events stream: every event subject at the centre; at an office, only
    /// those of its regions.
    pub(crate) fn event_subjects(&self) -> Vec<String> {
        let p = &self.subject_prefix;
        match &self.office {
            None => vec![format!("{p}.>")],
            Some(o) => o
                .regions
                .iter()
                .flat_map(|r| [format!("{p}.*.*.{r}"), format!("{p}.*.*.{r}.>")])
                .collect(),
        }
    }

    /// The name office `office`'s events stream has in its own domain.
    pub fn office_stream(&self, office: &str) -> String {
        format!(
            "{}_{}",
            Topology::default().events_stream,
            office.to_uppercase()
        )
    }

    /// The centre's mirror of office `office`'s events stream.
    pub fn mirror_stream(&self, office: &str) -> String {
        format!("{}_MIRROR_{}", self.events_stream, office.to_uppercase())
    }

    /// Where the mirror of office `office` receives its messages (a prefix of its own, so an
    /// office can deliver to its own mirror only).
    pub fn mirror_deliver_prefix(office: &str) -> String {
        format!("timpora.mirror.{office}")
    }

    /// The JetStream API of office `office`'s domain, as seen from the centre.
    fn office_api(office: &str) -> String {
        format!("$JS.{office}.API")
    }

    /// The centre's mirror of office `office`'s events stream: kept like the events.
    pub fn mirror_stream_config(&self, office: &str) -> stream::Config {
        let events = self.events_stream_config();
        stream::Config {
            name: self.mirror_stream(office),
            description: Some(format!(
                "TIMPORA events of the {office} office, mirrored from its JetStream domain"
            )),
            subjects: Vec::new(),
            sources: None,
            mirror: Some(stream::Source {
                name: self.office_stream(office),
                external: Some(stream::External {
                    api_prefix: Self::office_api(office),
                    delivery_prefix: Some(Self::mirror_deliver_prefix(office)),
                }),
                ..Default::default()
            }),
            duplicate_window: std::time::Duration::ZERO,
            ..events
        }
    }

    /// The events stream's sources: the mirror of every office.
    pub(crate) fn event_sources(&self) -> Option<Vec<stream::Source>> {
        (!self.offices.is_empty()).then(|| {
            self.offices
                .iter()
                .map(|o| stream::Source {
                    name: self.mirror_stream(o),
                    ..Default::default()
                })
                .collect()
        })
    }

    /// What office `office`'s leaf connection may do at the centre, as the user it connects
    /// as: answer its mirror's consumer requests and deliver to that mirror (publish), receive
    /// those requests and the mirror's flow control (subscribe). No event, alert or access
    /// subject crosses the link either way.
    pub fn leaf_permissions(&self, office: &str) -> Permissions {
        let api = Self::office_api(office);
        let stream = self.office_stream(office);
        Permissions {
            publish: vec![
                // Answers to the centre's JetStream requests (the mirror's consumer).
                "$JSC.R.>".into(),
                format!("{}.>", Self::mirror_deliver_prefix(office)),
            ],
            publish_deny: Vec::new(),
            subscribe: vec![
                format!("{api}.CONSUMER.CREATE.{stream}"),
                format!("{api}.CONSUMER.CREATE.{stream}.>"),
                format!("{api}.STREAM.INFO.{stream}"),
                format!("$JS.FC.{stream}.>"),
            ],
            allow_responses: false,
        }
    }

    /// Subjects an office's leaf node neither sends to nor takes from the centre whatever the
    /// centre allows (its `deny_exports` and `deny_imports`): the hub's records.
    pub fn leaf_remote_denies(&self) -> Vec<String> {
        let d = Topology::default();
        vec![
            format!("{}.>", self.subject_prefix),
            format!("{}.>", d.alerts_subject_prefix),
            format!("{}.>", d.access_subject_prefix),
            format!("{}.>", d.tlog_subject_prefix),
            format!("{}.>", d.holds_subject_prefix),
        ]
    }
}

/// How the centre's mirror of one provincial office stands: what an engineer on call asks
/// first when an office's events are late.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeLink {
    /// The office.
    pub office: String,
    /// Messages of the office's stream the mirror does not hold yet.
    pub lag: u64,
    /// Since the mirror last heard from the office (`None`: never, or not now).
    pub since_contact: Option<std::time::Duration>,
}

impl crate::Bus {
    /// At the centre: each provincial office's mirror, as NATS reports it.
    pub async fn office_links(&self) -> Result<Vec<OfficeLink>> {
        let t = self.topology();
        let mut out = Vec::with_capacity(t.offices.len());
        for office in &t.offices {
            let mut s = self
                .jetstream()
                .get_stream(t.mirror_stream(office))
                .await
                .map_err(crate::error::err("get mirror stream"))?;
            let info = s
                .info()
                .await
                .map_err(crate::error::err("mirror stream info"))?;
            let mirror = info.mirror.as_ref();
            out.push(OfficeLink {
                office: office.clone(),
                lag: mirror.map_or(0, |m| m.lag),
                since_contact: mirror.and_then(|m| m.active),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sultra() -> Office {
        Office {
            name: "sultra".into(),
            regions: vec!["74".into()],
        }
    }

    #[test]
    fn an_office_names_everything_after_itself_and_takes_only_its_regions() {
        let t = Topology::for_office(sultra()).unwrap();
        assert_eq!(t.events_stream, "TIMPORA_EVENTS_SULTRA");
        assert_eq!(t.alerts_stream, "TIMPORA_ALERTS_SULTRA");
        assert_eq!(t.alerts_subject_prefix, "timpora.office.sultra.alerts");
        assert_eq!(t.access_subject_prefix, "timpora.office.sultra.access");
        assert_eq!(t.subject_prefix, "timpora.events");
        assert_eq!(
            t.events_stream_config().subjects,
            ["timpora.events.*.*.74", "timpora.events.*.*.74.>"]
        );
        assert_eq!(t.clone().resolve().unwrap(), t, "idempotent");
        let centre = Topology {
            offices: vec!["sultra".into()],
            ..Default::default()
        };
        assert_eq!(centre.office_stream("sultra"), t.events_stream);
        // Every stream of the office is named apart from the centre's.
        let d = Topology::default();
        for (a, b) in [
            (&t.events_stream, &d.events_stream),
            (&t.access_stream, &d.access_stream),
            (&t.tlog_stream, &d.tlog_stream),
            (&t.holds_stream, &d.holds_stream),
            (&t.rules_bucket, &d.rules_bucket),
            (&t.checkpoint_bucket, &d.checkpoint_bucket),
            (&t.tiles_bucket, &d.tiles_bucket),
            (&t.correlators_bucket, &d.correlators_bucket),
        ] {
            assert_ne!(a, b);
        }
    }

    #[test]
    fn the_centre_mirrors_each_office_and_sources_the_mirrors() {
        let t = Topology {
            offices: vec!["sultra".into(), "sulteng".into()],
            ..Default::default()
        };
        let m = t.mirror_stream_config("sultra");
        assert_eq!(m.name, "TIMPORA_EVENTS_MIRROR_SULTRA");
        assert!(m.subjects.is_empty());
        let source = m.mirror.unwrap();
        assert_eq!(source.name, "TIMPORA_EVENTS_SULTRA");
        let ext = source.external.unwrap();
        assert_eq!(ext.api_prefix, "$JS.sultra.API");
        assert_eq!(
            ext.delivery_prefix.as_deref(),
            Some("timpora.mirror.sultra")
        );
        let sources: Vec<String> = t
            .events_stream_config()
            .sources
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(
            sources,
            [
                "TIMPORA_EVENTS_MIRROR_SULTRA",
                "TIMPORA_EVENTS_MIRROR_SULTENG"
            ]
        );
        assert!(Topology::default().events_stream_config().sources.is_none());
    }

    #[test]
    fn bad_office_settings_are_refused_with_the_reason() {
        let with = |o: Office| Topology::for_office(o).unwrap_err().to_string();
        let e = with(Office {
            name: "Sul Tra".into(),
            regions: vec!["74".into()],
        });
        assert!(e.contains("lowercase letters and digits"), "{e}");
        let e = with(Office {
            name: "sultra".into(),
            regions: vec![],
        });
        assert!(e.contains("regions"), "{e}");
        let e = with(Office {
            name: "sultra".into(),
            regions: vec!["74.>".into()],
        });
        assert!(e.contains("region code"), "{e}");
        let both = Topology {
            offices: vec!["sulteng".into()],
            office: Some(sultra()),
            ..Default::default()
        };
        assert!(both.resolve().unwrap_err().to_string().contains("not both"));
    }

    #[test]
    fn an_office_link_carries_no_record_subject() {
        let t = Topology {
            offices: vec!["sultra".into()],
            ..Default::default()
        };
        let p = t.leaf_permissions("sultra");
        for s in p.publish.iter().chain(&p.subscribe) {
            assert!(
                !s.starts_with("timpora.events")
                    && !s.starts_with("timpora.alerts")
                    && !s.starts_with("timpora.access")
                    && s != ">",
                "{s}"
            );
        }
        assert!(t.leaf_remote_denies().contains(&"timpora.events.>".into()));
    }
}
