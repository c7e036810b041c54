//! Who may do what on the bus: one NATS user per component, each with the subject permissions
//! its job needs and nothing more, as code next to the topology they refer to.
//!
//! - **admin** — creates and updates the topology (streams, buckets, object stores), applies rule
//!   sets, places legal holds. The only identity that may change a stream's configuration, delete
//!   a stream or a message, or purge.
//! - **gateway** — publishes agency events (never the hub's clock ticks), alert lifecycle steps
//!   and access records; reads what it serves (events, alerts, access records, the rule history
//!   for explanations, the transparency log's checkpoints and verifications).
//! - **correlator** — reads events; publishes raised alerts and clock ticks; keeps its
//!   checkpoints (its own object store) and reports its status (and the rule set it was started
//!   with) in the rules bucket; correlators that share the work say who is alive and who holds
//!   which part in the correlators bucket.
//! - **sealer** — reads the sealed streams and the holds; writes checkpoints, tiles, latest
//!   checkpoints and held copies; asks witnesses to cosign.
//! - **witness** — answers cosigning requests, nothing else.
//! - **auditor** — reads every record and the bus's state; writes only its own traces: the
//!   access record of a verification or explanation, and each log's last verification outcome.
//!
//! The console has no NATS identity at all: it reaches data only through the gateway.
//!
//! Each identity's replies come to an inbox of its own (`_INBOX.<identity>.>`), so no component
//! can read another's replies or deliveries. [`authorization`] renders the permissions as a
//! `nats-server` `authorization` block, for the server `timpora up` starts and for `deploy/`.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};
pub use crate::identity::Identity;
use crate::options::read_secret;
use crate::topology::Topology;

/// Subject prefix of witness requests (`<prefix>.<witness>.add-checkpoint`, see `timpora-witness`).
pub const WITNESS_SUBJECT_PREFIX: &str = "timpora.witness";

/// Subjects an identity may publish to and subscribe on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Subjects it may publish to.
    pub publish: Vec<String>,
    /// Of those, subjects it may not publish to after all.
    pub publish_deny: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
    /// Whether it may answer requests (publish once to a request's reply subject).
    pub allow_responses: bool,
}

/// The JetStream API subjects that read stream `s`: its info, single messages, and ordered
/// consumers with their acknowledgements and flow control.
fn read(s: &str) -> Vec<String> {
    [
        "$JS.API.STREAM.INFO.{s}",
        "$JS.API.STREAM.MSG.GET.{s}",
        "$JS.API.DIRECT.GET.{s}",
        "$JS.API.DIRECT.GET.{s}.>",
        "$JS.API.CONSUMER.CREATE.{s}",
        "$JS.API.CONSUMER.CREATE.{s}.>",
        "$JS.API.CONSUMER.INFO.{s}.*",
        "$JS.API.CONSUMER.MSG.NEXT.{s}.*",
        "$JS.ACK.{s}.>",
        "$JS.FC.{s}.>",
    ]
    .iter()
    .map(|p| p.replace("{s}", s))
    .collect()
}

fn kv(bucket: &str) -> String {
    format!("KV_{bucket}")
}

fn obj(store: &str) -> String {
    format!("OBJ_{store}")
}

/// Write objects to object store `store` (replacing one purges its old chunks).
fn write_objects(store: &str) -> Vec<String> {
    vec![
        format!("$O.{store}.>"),
        format!("$JS.API.STREAM.PURGE.{}", obj(store)),
    ]
}

impl Topology {
    /// What `id` may do on this topology's streams and buckets.
    pub fn permissions(&self, id: Identity) -> Permissions {
        let t = self;
        let mut p = Permissions {
            subscribe: vec![format!("{}.>", id.inbox_prefix())],
            publish: vec!["$JS.API.INFO".into()],
            ..Default::default()
        };
        let logs = t.sealed_streams();
        // The streams (buckets and object stores are streams too) each identity reads.
        let reads: Vec<String> = match id {
            Identity::Admin => {
                p.publish = vec![">".into()];
                p.subscribe = vec![">".into()];
                vec![]
            }
            Identity::Gateway => {
                p.publish.extend([
                    format!("{}.>", t.subject_prefix),
                    format!("{}.lifecycle.>", t.alerts_subject_prefix),
                    format!("{}.>", t.access_subject_prefix),
                ]);
                p.publish_deny.push(format!("{}.hub.>", t.subject_prefix));
                // At the centre: how each office's mirror stands (counts, not content).
                p.publish.extend(
                    t.offices
                        .iter()
                        .map(|o| format!("$JS.API.STREAM.INFO.{}", t.mirror_stream(o))),
                );
                vec![
                    t.events_stream.clone(),
                    t.alerts_stream.clone(),
                    t.access_stream.clone(),
                    t.tlog_stream.clone(),
                    kv(&t.rules_bucket),
                    kv(&t.tlog_bucket),
                ]
            }
            Identity::Correlator => {
                p.publish.extend([
                    format!("{}.hub.>", t.subject_prefix),
                    format!("{}.raised.>", t.alerts_subject_prefix),
                    format!("$KV.{}.{}", t.rules_bucket, crate::state::RULES_ACTIVE),
                    format!("$KV.{}.{}", t.rules_bucket, crate::state::CORRELATOR_STATUS),
                ]);
                p.publish.extend(write_objects(&t.checkpoint_bucket));
                p.publish.push(format!("$KV.{}.>", t.correlators_bucket));
                vec![
                    t.events_stream.clone(),
                    kv(&t.rules_bucket),
                    obj(&t.checkpoint_bucket),
                    kv(&t.correlators_bucket),
                ]
            }
            Identity::Sealer => {
                p.publish.extend([
                    format!("{}.>", t.tlog_subject_prefix),
                    format!("{}.>", t.holds_subject_prefix),
                    format!("{WITNESS_SUBJECT_PREFIX}.*.add-checkpoint"),
                ]);
                p.publish.extend(
                    logs.iter()
                        .map(|(log, _)| format!("$KV.{}.{log}", t.tlog_bucket)),
                );
                p.publish.extend(write_objects(&t.tiles_bucket));
                vec![
                    t.events_stream.clone(),
                    t.alerts_stream.clone(),
                    t.access_stream.clone(),
                    t.tlog_stream.clone(),
                    t.holds_stream.clone(),
                    kv(&t.tlog_bucket),
                    kv(&t.holds_bucket),
                    obj(&t.tiles_bucket),
                ]
            }
            Identity::Witness => {
                p.subscribe
                    .push(format!("{WITNESS_SUBJECT_PREFIX}.*.add-checkpoint"));
                p.allow_responses = true;
                vec![]
            }
            Identity::Auditor => {
                p.publish.extend([
                    format!("{}.verify.*", t.access_subject_prefix),
                    format!("{}.explain.*", t.access_subject_prefix),
                    "$JS.API.STREAM.NAMES".into(),
                    "$JS.API.STREAM.LIST".into(),
                    // Every stream's configuration and counts (not its content), for status.
                    "$JS.API.STREAM.INFO.*".into(),
                    "$JS.API.CONSUMER.NAMES.*".into(),
                    "$JS.API.CONSUMER.LIST.*".into(),
                ]);
                p.publish.extend(
                    logs.iter()
                        .map(|(log, _)| format!("$KV.{}.verified-{log}", t.tlog_bucket)),
                );
                vec![
                    t.events_stream.clone(),
                    t.alerts_stream.clone(),
                    t.access_stream.clone(),
                    t.tlog_stream.clone(),
                    t.holds_stream.clone(),
                    kv(&t.rules_bucket),
                    kv(&t.tlog_bucket),
                    kv(&t.holds_bucket),
                    obj(&t.tiles_bucket),
                    kv(&t.correlators_bucket),
                ]
            }
        };
        for s in &reads {
            p.publish.extend(read(s));
        }
        p
    }
}

/// A `nats-server` `authorization` block giving each identity in `users` its permissions on
/// `topology`, and each of the topology's provincial offices the user its leaf node links as.
/// `users` pairs an identity with the value of its `nkey` field: a public nkey (`U…`), or a
/// variable (`$TIMPORA_NKEY_GATEWAY`) the server resolves from its environment.
///
/// An office's leaf node has no password: the centre maps the certificate it presents on the
/// mutually authenticated leaf link (`verify_and_map`) to its user, whose connections can only
/// be leaf links.
pub fn authorization(topology: &Topology, users: &[(Identity, String)]) -> String {
    let mut out = String::from("authorization {\n  users: [\n");
    for (id, key) in users {
        let _ = writeln!(out, "    # {id}");
        let _ = writeln!(out, "    {{ nkey: {key}, permissions: {{");
        render_permissions(&mut out, &topology.permissions(*id));
        let _ = writeln!(out, "    }} }}");
    }
    for office in &topology.offices {
        let _ = writeln!(
            out,
            "    # the {office} office's leaf node, by the certificate it links with"
        );
        let _ = writeln!(
            out,
            "    {{ user: \"CN={}\", allowed_connection_types: [\"LEAFNODE\"], permissions: {{",
            leaf_user(office)
        );
        render_permissions(&mut out, &topology.leaf_permissions(office));
        let _ = writeln!(out, "    }} }}");
    }
    out.push_str("  ]\n}\n");
    out
}

/// The common name of the certificate office `office`'s leaf node links to the centre with.
pub fn leaf_user(office: &str) -> String {
    format!("office-{office}")
}

fn render_permissions(out: &mut String, p: &Permissions) {
    let list = |v: &[String]| match v {
        [one] => format!("\"{one}\""),
        _ => {
            v.iter()
                .map(|s| format!("\n          \"{s}\""))
                .collect::<String>()
                + "\n        "
        }
    };
    let _ = write!(out, "        publish: {{ allow: [{}]", list(&p.publish));
    if !p.publish_deny.is_empty() {
        let _ = write!(out, ", deny: [{}]", list(&p.publish_deny));
    }
    let _ = writeln!(out, " }}");
    let _ = writeln!(
        out,
        "        subscribe: {{ allow: [{}] }}",
        list(&p.subscribe)
    );
    if p.allow_responses {
        let _ = writeln!(out, "        allow_responses: true");
    }
}

/// Each identity's `nkey` as the environment variable `TIMPORA_NKEY_<IDENTITY>`, for
/// [`authorization`] in a configuration that is deployed before its keys are known.
pub fn variables() -> Vec<(Identity, String)> {
    Identity::ALL
        .iter()
        .map(|id| (*id, format!("$TIMPORA_NKEY_{}", id.name().to_uppercase())))
        .collect()
}

/// The public nkey of the seed in `path` (an nkey seed file, or a `.creds` file's seed).
pub fn public_key(path: &Path) -> Result<String> {
    let text = read_secret(path)?;
    let seed = seed_of(&text).ok_or_else(|| {
        Error::msg(
            ErrorKind::Refused,
            "read credentials",
            format!("{} holds no nkey seed", path.display()),
        )
    })?;
    let pair = nkeys::KeyPair::from_seed(seed).map_err(|_| {
        Error::msg(
            ErrorKind::Refused,
            "read credentials",
            format!("{} holds no valid nkey seed", path.display()),
        )
    })?;
    Ok(pair.public_key())
}

/// The seed in a seed file or a credentials file (the line that starts with `SU`).
fn seed_of(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| l.starts_with("SU"))
}

/// Generate a user nkey for every identity in `dir` (`<identity>.nk`, readable by the owner
/// only), keeping the ones already there. Returns the public keys.
pub fn generate(dir: &Path) -> Result<Vec<(Identity, String)>> {
    let io = |e: std::io::Error| {
        Error::msg(
            ErrorKind::Refused,
            "generate credentials",
            format!("{}: {e}", dir.display()),
        )
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    let mut out = Vec::new();
    for id in Identity::ALL {
        let path = id.credentials_in(dir);
        if !path.exists() {
            let pair = nkeys::KeyPair::new_user();
            let seed = pair.seed().map_err(|e| {
                Error::msg(ErrorKind::Refused, "generate credentials", e.to_string())
            })?;
            write_private(&path, &format!("{seed}\n")).map_err(io)?;
        }
        out.push((id, public_key(&path)?));
    }
    Ok(out)
}

/// Write `text` to a new file only its owner can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)?.write_all(text.as_bytes())
}

/// The public keys of the identities whose credentials are in `dir`.
pub fn public_keys(dir: &Path) -> Result<Vec<(Identity, String)>> {
    Identity::ALL
        .iter()
        .filter(|id| id.credentials_in(dir).exists())
        .map(|id| Ok((*id, public_key(&id.credentials_in(dir))?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_publishes_alerts_lifecycle_and_ticks() {
        let t = Topology::default();
        let may = |id, subject: &str| {
            let p = t.permissions(id);
            let matches = |pattern: &String| subject_matches(pattern, subject);
            p.publish.iter().any(matches) && !p.publish_deny.iter().any(matches)
        };
        let raised = "timpora.alerts.raised.a1";
        let lifecycle = "timpora.alerts.lifecycle.a1";
        let event = "timpora.events.polri.report.74";
        let tick = "timpora.events.hub.clock_tick.0";
        for id in Identity::ALL {
            let admin = id == Identity::Admin;
            assert_eq!(may(id, raised), admin || id == Identity::Correlator, "{id}");
            assert_eq!(may(id, lifecycle), admin || id == Identity::Gateway, "{id}");
            assert_eq!(may(id, event), admin || id == Identity::Gateway, "{id}");
            assert_eq!(may(id, tick), admin || id == Identity::Correlator, "{id}");
            let config = "$JS.API.STREAM.UPDATE.TIMPORA_EVENTS";
            assert_eq!(may(id, config), admin, "{id}");
            // Only correlators take parts of the work.
            let part = "$KV.TIMPORA_CORRELATORS.part.0-of-2";
            assert_eq!(may(id, part), admin || id == Identity::Correlator, "{id}");
        }
    }

    /// NATS subject matching: `*` one token, `>` the rest.
    fn subject_matches(pattern: &str, subject: &str) -> bool {
        let mut s = subject.split('.');
        for p in pattern.split('.') {
            match (p, s.next()) {
                (">", Some(_)) => return true,
                ("*", Some(_)) => {}
                (p, Some(t)) if p == t => {}
                _ => return false,
            }
        }
        s.next().is_none()
    }

    #[test]
    fn generated_keys_are_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate(dir.path()).unwrap();
        assert_eq!(first.len(), Identity::ALL.len());
        assert!(first.iter().all(|(_, k)| k.starts_with('U')));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("gateway.nk"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
        }
        assert_eq!(generate(dir.path()).unwrap(), first, "kept, not replaced");
        assert_eq!(public_keys(dir.path()).unwrap(), first);
        let block = authorization(&Topology::default(), &first);
        assert!(block.contains(&first[1].1));
        for id in Identity::ALL {
            let seed = std::fs::read_to_string(id.credentials_in(dir.path())).unwrap();
            assert!(
                !block.contains(seed.trim()),
                "no seed in the server's config"
            );
        }
    }
}
