//! Command-line clients of the gateway: who to be (`--identity`, `--cert`, `--token`, or a
//! development identity by default), `timpora publish` and `timpora subscribe`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use timpora_client::{Conn, Credentials, json};
use timpora_hub::Config;
use timpora_proto::v1::event_bus_service_client::EventBusServiceClient;
use timpora_proto::v1::{
    PublishStreamRequest, SubscribeRequest, publish_stream_response, subscribe_request,
};
use timpora_scenario::pilot;

/// How to reach the gateway and who to be.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// Gateway URL, e.g. https://localhost:50051 (default: the configured listen address).
    #[arg(long, env = "TIMPORA_GATEWAY")]
    pub gateway: Option<String>,
    /// Act as this development identity (`agency/unit`), with its certificate or token from the
    /// data directory.
    #[arg(long, env = "TIMPORA_IDENTITY")]
    pub identity: Option<String>,
    /// Bearer token.
    #[arg(long, env = "TIMPORA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Client certificate (PEM).
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// CA that issued the gateway's certificate (PEM).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Name the gateway's certificate must carry.
    #[arg(long, default_value = "localhost")]
    pub tls_domain: String,
}

impl ConnectArgs {
    /// Connect as the identity these arguments name; without credentials, as `default` when
    /// the data directory or the config has credentials for it (as `timpora up` and
    /// `timpora dev init` create them).
    pub async fn connect(
        &self,
        cfg: &Config,
        data_dir: &Path,
        default: &str,
    ) -> anyhow::Result<Conn> {
        let (mut target, keyring) = cfg.gateway_client(self.gateway.clone(), Some(data_dir));
        target.domain.clone_from(&self.tls_domain);
        if self.ca.is_some() {
            target.ca.clone_from(&self.ca);
        }
        let credentials = match (&self.cert, &self.key, &self.token) {
            (Some(cert), Some(key), _) => Credentials::Certificate {
                cert: cert.clone(),
                key: key.clone(),
            },
            (_, _, Some(token)) => Credentials::Token(token.clone()),
            _ => {
                let identity = self
                    .identity
                    .clone()
                    .or_else(|| keyring.knows(default).then(|| default.to_owned()));
                match identity {
                    Some(id) => keyring.credentials(&id)?,
                    None => Credentials::Anonymous,
                }
            }
        };
        Ok(timpora_client::connect(&target, &credentials).await?)
    }
}

/// `timpora publish`.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// NDJSON file; standard input when absent or `-`.
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Publish every readable line through `PublishStream`; print one JSON result per line and a
/// summary. Exit status 1 when any line was not stored.
pub async fn publish(cfg: &Config, data_dir: &Path, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let text = match args.file.as_deref() {
        None => std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?,
        Some(p) if p == Path::new("-") => {
            std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
        }
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?
        }
    };
    let mut requests = Vec::new();
    let mut line_of = Vec::new();
    let mut unreadable = 0usize;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match json::parse_publish_line(line) {
            Ok(event) => {
                requests.push(PublishStreamRequest { event: Some(event) });
                line_of.push(i + 1);
            }
            Err(e) => {
                unreadable += 1;
                println!("{}", json!({ "line": i + 1, "error": e.to_string() }));
            }
        }
    }
    let (mut stored, mut duplicates, mut rejected) = (0usize, 0usize, 0usize);
    if !requests.is_empty() {
        // Without credentials, act as a pilot unit of the first event's agency.
        let agency = requests
            .first()
            .and_then(|r| r.event.as_ref()?.payload.as_ref())
            .map(|p| timpora_proto::type_of(p).domain)
            .unwrap_or("");
        let unit = pilot::unit_of(agency).unwrap_or(pilot::SECRETARIAT);
        let conn = args.connect.connect(cfg, data_dir, unit).await?;
        let mut client = EventBusServiceClient::new(conn);
        // A caller's trace (`TRACEPARENT`, as other tools pass it) is continued by the hub.
        let mut request = tonic::Request::new(futures::stream::iter(requests));
        if let Some(tp) = std::env::var("TRACEPARENT")
            .ok()
            .and_then(|tp| tp.parse().ok())
        {
            request.metadata_mut().insert("traceparent", tp);
        }
        let mut responses = client
            .publish_stream(request)
            .await
            .context("publish stream refused")?
            .into_inner();
        while let Some(r) = responses.message().await.context("publish stream broken")? {
            let line = line_of.get(r.index as usize).copied().unwrap_or_default();
            match r.result {
                Some(publish_stream_response::Result::Ack(a)) => {
                    if a.duplicate {
                        duplicates += 1;
                    } else {
                        stored += 1;
                    }
                    println!(
                        "{}",
                        json!({"line": line, "event_id": a.event_id, "sequence": a.sequence,
                               "duplicate": a.duplicate, "type": a.r#type})
                    );
                }
                Some(publish_stream_response::Result::Rejection(rj)) => {
                    rejected += 1;
                    let fields: Vec<_> = rj
                        .field_violations
                        .iter()
                        .map(|v| json!({"field": v.field, "description": v.description}))
                        .collect();
                    println!(
                        "{}",
                        json!({"line": line, "event_id": r.event_id, "code": rj.code,
                               "message": rj.message, "fields": fields})
                    );
                }
                None => {}
            }
        }
    }
    eprintln!(
        "{stored} stored, {duplicates} duplicates, {rejected} rejected, {unreadable} unreadable lines"
    );
    Ok(if rejected + unreadable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `timpora subscribe`.
#[derive(Debug, clap::Args)]
pub struct SubscribeArgs {
    /// Only this event type (repeatable), e.g. timpora.imigrasi.departure_check.v1.
    #[arg(long = "type")]
    pub types: Vec<String>,
    /// Only events from this agency (repeatable).
    #[arg(long = "agency")]
    pub agencies: Vec<String>,
    /// Only events in this area code or below it (repeatable), e.g. 74.02.
    #[arg(long = "region")]
    pub regions: Vec<String>,
    /// Only events mentioning this entity token or id (repeatable).
    #[arg(long = "entity")]
    pub entities: Vec<String>,
    /// Start at this stream sequence.
    #[arg(long, group = "start")]
    pub from_seq: Option<u64>,
    /// Start at the first event stored at or after this RFC 3339 time.
    #[arg(long, group = "start")]
    pub since: Option<String>,
    /// Resume after the event this cursor was printed with.
    #[arg(long, group = "start")]
    pub cursor: Option<String>,
    /// Only events stored from now on.
    #[arg(long, group = "start")]
    pub new: bool,
    /// Stop after this many events.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Stop when nothing arrives for this many seconds.
    #[arg(long)]
    pub idle_exit: Option<f64>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// The next message of a stream, or `None` after `idle_exit` seconds without one.
pub async fn next_or_idle<T>(
    stream: &mut tonic::Streaming<T>,
    idle_exit: Option<f64>,
) -> Result<Option<T>, tonic::Status> {
    match idle_exit {
        Some(secs) => tokio::time::timeout(Duration::from_secs_f64(secs), stream.message())
            .await
            .unwrap_or(Ok(None)),
        None => stream.message().await,
    }
}

/// Print matching events as NDJSON (`{"sequence", "cursor", "event"}` per line).
pub async fn subscribe(cfg: &Config, data_dir: &Path, a: SubscribeArgs) -> anyhow::Result<()> {
    use subscribe_request::Start;
    let start = if let Some(s) = a.from_seq {
        Some(Start::StartSequence(s))
    } else if let Some(t) = &a.since {
        let ts: prost_types::Timestamp = t
            .parse()
            .map_err(|_| anyhow::anyhow!("--since {t:?} is not an RFC 3339 time"))?;
        Some(Start::StartTime(ts))
    } else if let Some(c) = &a.cursor {
        Some(Start::Cursor(c.clone()))
    } else if a.new {
        Some(Start::OnlyNew(true))
    } else {
        None
    };
    let req = SubscribeRequest {
        types: a.types,
        agencies: a.agencies,
        regions: a.regions,
        entity_tokens: a.entities,
        start,
    };
    let conn = a.connect.connect(cfg, data_dir, pilot::SECRETARIAT).await?;
    let mut client = EventBusServiceClient::new(conn);
    let mut stream = client
        .subscribe(req)
        .await
        .context("subscribe refused")?
        .into_inner();
    let mut n = 0u64;
    while a.limit.is_none_or(|l| n < l) {
        let Some(r) = next_or_idle(&mut stream, a.idle_exit)
            .await
            .context("subscription broken")?
        else {
            break;
        };
        println!("{}", json::to_value("timpora.v1.SubscribeResponse", &r)?);
        n += 1;
    }
    Ok(())
}
