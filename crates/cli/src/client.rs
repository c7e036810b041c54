//! Command-line clients of the gateway: `timpora publish` and `timpora subscribe`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use timpora_proto::v1::event_bus_service_client::EventBusServiceClient;
use timpora_proto::v1::{
    PublishStreamRequest, SubscribeRequest, publish_stream_response, subscribe_request,
};

use crate::{Config, dev, json};

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

/// The identity command-line readers act as by default against a development set-up.
pub const DEFAULT_READER: &str = "ops/timpora-kendari";

impl ConnectArgs {
    /// These arguments, acting as development identity `identity` when no credentials were
    /// given and the data directory holds that identity's certificate or token (as `timpora up`
    /// and `timpora dev init` create them).
    pub fn or_dev_identity(&self, cfg: &Config, data_dir: &Path, identity: &str) -> Self {
        let mut a = self.clone();
        let given = a.identity.is_some() || a.token.is_some() || a.cert.is_some();
        let known = dev::client_paths(data_dir, identity).0.exists()
            || cfg.gateway.tokens.iter().any(|t| t.identity == identity);
        if !given && known {
            a.identity = Some(identity.to_owned());
        }
        a
    }

    /// Connect as a development identity, to the configured gateway unless `gateway` is given.
    pub fn as_identity(gateway: Option<String>, identity: &str) -> Self {
        Self {
            gateway,
            identity: Some(identity.to_owned()),
            token: None,
            cert: None,
            key: None,
            ca: None,
            tls_domain: "localhost".into(),
        }
    }
}

/// Adds the bearer token, when there is one, to every call.
#[derive(Clone)]
pub struct Auth(pub Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// An authenticated channel to the gateway.
pub type Conn = InterceptedService<Channel, Auth>;

fn read(p: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
}

/// Connect to the gateway as the identity the arguments name.
pub async fn connect(cfg: &Config, data_dir: &Path, a: &ConnectArgs) -> anyhow::Result<Conn> {
    let tls = a
        .gateway
        .as_deref()
        .map_or(cfg.gateway.tls.is_some(), |g| g.starts_with("https://"));
    let url = a.gateway.clone().unwrap_or_else(|| {
        format!(
            "{}://{}",
            if tls { "https" } else { "http" },
            cfg.gateway.listen
        )
    });
    let mut token = a.token.clone();
    let mut identity = None;
    if let (Some(c), Some(k)) = (&a.cert, &a.key) {
        identity = Some(Identity::from_pem(read(c)?, read(k)?));
    } else if let Some(id) = &a.identity {
        let (cert, key) = dev::client_paths(data_dir, id);
        if tls && cert.exists() {
            identity = Some(Identity::from_pem(read(&cert)?, read(&key)?));
        } else {
            token = Some(
                cfg.gateway
                    .tokens
                    .iter()
                    .find(|t| t.identity == *id)
                    .map(|t| t.token.clone())
                    .with_context(|| {
                        format!(
                            "no development certificate or token for {id} in {}; \
                             run `timpora dev init`",
                            data_dir.display()
                        )
                    })?,
            );
        }
    }
    let mut endpoint = Channel::from_shared(url.clone())
        .with_context(|| format!("{url} is not a valid gateway URL"))?
        .connect_timeout(Duration::from_secs(5))
        .initial_stream_window_size(timpora_gateway::H2_STREAM_WINDOW)
        .initial_connection_window_size(timpora_gateway::H2_CONNECTION_WINDOW);
    if tls {
        let mut cfg_tls = ClientTlsConfig::new().domain_name(&a.tls_domain);
        let ca = a.ca.clone().or_else(|| {
            let dev_ca = dev::ca_path(data_dir);
            dev_ca.exists().then_some(dev_ca)
        });
        if let Some(ca) = ca {
            cfg_tls = cfg_tls.ca_certificate(Certificate::from_pem(read(&ca)?));
        }
        if let Some(id) = identity {
            cfg_tls = cfg_tls.identity(id);
        }
        endpoint = endpoint.tls_config(cfg_tls)?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach the gateway at {url}"))?;
    let header = token
        .map(|t| format!("Bearer {t}").parse())
        .transpose()
        .context("token is not a valid header value")?;
    Ok(InterceptedService::new(channel, Auth(header)))
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
                println!("{}", json!({ "line": i + 1, "error": format!("{e:#}") }));
            }
        }
    }
    let (mut stored, mut duplicates, mut rejected) = (0usize, 0usize, 0usize);
    if !requests.is_empty() {
        // Without credentials, act as a development unit of the first event's agency.
        let agency = requests
            .first()
            .and_then(|r| r.event.as_ref()?.payload.as_ref())
            .map(|p| {
                timpora_proto::type_of(p)
                    .name
                    .split('.')
                    .nth(1)
                    .unwrap_or("")
            })
            .unwrap_or("");
        let unit = timpora_gateway::pki::DEV_IDENTITIES
            .iter()
            .find(|id| id.split('/').next() == Some(agency))
            .copied()
            .unwrap_or(DEFAULT_READER);
        let conn_args = args.connect.or_dev_identity(cfg, data_dir, unit);
        let mut client = EventBusServiceClient::new(connect(cfg, data_dir, &conn_args).await?);
        let mut responses = client
            .publish_stream(futures::stream::iter(requests))
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
    let conn_args = a.connect.or_dev_identity(cfg, data_dir, DEFAULT_READER);
    let mut client = EventBusServiceClient::new(connect(cfg, data_dir, &conn_args).await?);
    let mut stream = client
        .subscribe(req)
        .await
        .context("subscribe refused")?
        .into_inner();
    let mut n = 0u64;
    loop {
        if a.limit.is_some_and(|l| n >= l) {
            break;
        }
        let next = match a.idle_exit {
            Some(secs) => {
                match tokio::time::timeout(Duration::from_secs_f64(secs), stream.message()).await {
                    Ok(r) => r,
                    Err(_) => break,
                }
            }
            None => stream.message().await,
        };
        let Some(r) = next.context("subscription broken")? else {
            break;
        };
        println!("{}", json::to_value("timpora.v1.SubscribeResponse", &r)?);
        n += 1;
    }
    Ok(())
}
