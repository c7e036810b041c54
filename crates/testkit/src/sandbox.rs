//! The in-process hub the end-to-end tests and the benchmarks use: a real `nats-server`
//! (JetStream, temporary store, random port; or one given by URL) and the real gateway, wired by
//! `timpora-hub` like every other hub, on a random port, with development tokens and optionally
//! mutual TLS generated at run time; plus synthetic fixtures (valid-looking but invented NIKs,
//! passports and phones).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use futures::StreamExt;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity as TlsIdentity};

use timpora_bus::{Bus, Start, Topology};
use timpora_client::random_hex;
use timpora_gateway::{Config, KeyConfig, PseudonymConfig, TlsConfig, TokenConfig};
use timpora_hub::{Components, Running};
use timpora_natsd::NatsServer;
use timpora_proto::v1::Event;

use crate::pki::DevCa;

pub use timpora_proto::v1;

pub use timpora_scenario::pilot::IDENTITIES;

/// Sends `authorization: Bearer <token>` with every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// A channel that authenticates with a token.
pub type Authed = InterceptedService<Channel, Bearer>;

/// A change to the gateway config before start.
type Configure = Box<dyn FnOnce(&mut Config)>;

/// How to start a sandbox.
#[derive(Default)]
pub struct SandboxBuilder {
    tls: bool,
    tokens: bool,
    config: Option<Configure>,
    nats: Option<timpora_hub::NatsConfig>,
    topology: Option<Topology>,
    telemetry: bool,
}

impl SandboxBuilder {
    /// Use the NATS server at `url` instead of starting one.
    pub fn nats_url(mut self, url: impl Into<String>) -> Self {
        self.nats = Some(timpora_hub::NatsConfig {
            url: url.into(),
            ..Default::default()
        });
        self
    }

    /// Use the NATS server these settings reach (e.g. another sandbox's `nats_config`).
    pub fn nats(mut self, settings: timpora_hub::NatsConfig) -> Self {
        self.nats = Some(settings);
        self
    }

    /// Use these streams and subjects instead of the default ones.
    pub fn topology(mut self, t: Topology) -> Self {
        self.topology = Some(t);
        self
    }

    /// Serve `/metrics`, `/healthz` and `/readyz` on a port of its own
    /// ([`Sandbox::telemetry_addr`]).
    pub fn telemetry(mut self) -> Self {
        self.telemetry = true;
        self
    }

    /// Serve mutual TLS with a CA generated for this sandbox.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Also accept the development tokens (always on without TLS).
    pub fn tokens(mut self) -> Self {
        self.tokens = true;
        self
    }

    /// Adjust the gateway config before start.
    pub fn configure(mut self, f: impl FnOnce(&mut Config) + 'static) -> Self {
        self.config = Some(Box::new(f));
        self
    }

    /// Start NATS, provision the topology, start the gateway.
    pub async fn start(self) -> anyhow::Result<Sandbox> {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                std::env::var("RUST_LOG").unwrap_or_else(|_| "timpora=info,warn".into()),
            )
            .with_test_writer()
            .try_init();
        let topology = self.topology.unwrap_or_default();
        let dir = tempfile::tempdir()?;
        // A server of its own is secured as production's: each component as its own user,
        // over TLS; the sandbox's own handle is the admin.
        let (nats, nats_config) = match self.nats {
            Some(settings) => (None, settings),
            None => {
                let (n, c) = crate::dev::secured_nats(&dir.path().join("nats"), &topology)?;
                (Some(n), c)
            }
        };
        let bus = Bus::connect(
            nats_config.options(timpora_bus::Identity::Admin),
            "timpora-sandbox",
            topology.clone(),
        )
        .await?;
        bus.ensure_topology().await?;
        let mut tokens = HashMap::new();
        let mut config = Config::default();
        if !self.tls || self.tokens {
            for id in IDENTITIES {
                let token = format!("tok-{}", random_hex(16)?);
                config.tokens.push(TokenConfig {
                    token: token.clone(),
                    identity: (*id).to_owned(),
                });
                tokens.insert((*id).to_owned(), token);
            }
        }
        config.pseudonym = PseudonymConfig {
            active_version: None,
            keys: vec![KeyConfig {
                version: 1,
                key_file: None,
                key_hex: Some(random_hex(32)?),
            }],
        };
        let ca = if self.tls {
            let ca = DevCa::generate("timpora sandbox ca")?;
            let server = ca.server(&["localhost", "127.0.0.1"])?;
            let write = |name: &str, text: &str| -> anyhow::Result<std::path::PathBuf> {
                let p = dir.path().join(name);
                std::fs::write(&p, text)?;
                Ok(p)
            };
            config.tls = Some(TlsConfig {
                cert: write("server.pem", &server.cert_pem)?,
                key: write("server.key", &server.key_pem)?,
                client_ca: write("ca.pem", ca.cert_pem())?,
            });
            Some(ca)
        } else {
            None
        };
        // The pilot's units, as a development set-up assigns alerts to them.
        config.alerts.units = timpora_scenario::pilot::ASSIGNABLE
            .iter()
            .map(|u| (*u).to_owned())
            .collect();
        if let Some(f) = self.config {
            f(&mut config);
        }
        config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let hub_config = timpora_hub::Config {
            nats: nats_config.clone(),
            bus: topology,
            gateway: config.clone(),
            telemetry: timpora_hub::TelemetryConfig {
                listen: self
                    .telemetry
                    .then(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
                ..Default::default()
            },
            ..Default::default()
        };
        let hub = hub_config
            .build(timpora_hub::Options {
                components: Components::gateway(),
                ..Default::default()
            })
            .await?;
        let addr = hub.gateway_addr().context("the gateway has no address")?;
        let telemetry_addr = hub.metrics_addr();
        Ok(Sandbox {
            nats,
            bus,
            nats_config,
            addr,
            telemetry_addr,
            tokens,
            ca,
            config,
            _dir: dir,
            running: Some(hub.spawn()),
        })
    }
}

/// A running sandbox.
pub struct Sandbox {
    /// The real nats-server (none when the sandbox was given a URL).
    pub nats: Option<NatsServer>,
    /// The sandbox's own bus connection, as the admin (for inspecting the stream).
    pub bus: Bus,
    /// How the components reach NATS (URL, credentials, TLS): connect as any identity with
    /// `nats_config.options(identity)`.
    pub nats_config: timpora_hub::NatsConfig,
    /// Where the gateway listens.
    pub addr: SocketAddr,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (with [`SandboxBuilder::telemetry`]).
    pub telemetry_addr: Option<SocketAddr>,
    /// The gateway's config as started.
    pub config: Config,
    tokens: HashMap<String, String>,
    ca: Option<DevCa>,
    _dir: tempfile::TempDir,
    running: Option<Running>,
}

/// GET `path` over plain HTTP/1.0 from `addr` (a telemetry endpoint): (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(addr).await?;
    c.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut text = String::new();
    c.read_to_string(&mut text).await?;
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((code, body.to_owned()))
}

impl Sandbox {
    /// GET `path` from the telemetry endpoint (started with [`SandboxBuilder::telemetry`]):
    /// (status code, body).
    pub async fn telemetry_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let addr = self
            .telemetry_addr
            .ok_or_else(|| anyhow::anyhow!("the sandbox serves no telemetry"))?;
        http_get(addr, path).await
    }

    /// Start a plaintext sandbox with development tokens.
    pub async fn start() -> anyhow::Result<Self> {
        SandboxBuilder::default().start().await
    }

    /// Configure a sandbox.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    /// The sandbox's own nats-server (panics when it was given a URL).
    pub fn nats(&mut self) -> &mut NatsServer {
        self.nats
            .as_mut()
            .unwrap_or_else(|| panic!("this sandbox was given a NATS URL; it has no server"))
    }

    /// The gateway's development token for `identity`.
    pub fn token(&self, identity: &str) -> String {
        self.tokens.get(identity).cloned().unwrap_or_default()
    }

    /// A plaintext channel to the gateway, retrying until it accepts connections.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let url = format!("http://{}", self.addr);
        for _ in 0..100 {
            if let Ok(c) = Channel::from_shared(url.clone())?.connect().await {
                return Ok(c);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::bail!("gateway at {url} did not accept connections")
    }

    /// A channel that authenticates as `identity` with its token.
    pub async fn as_agency(&self, identity: &str) -> anyhow::Result<Authed> {
        let header = format!("Bearer {}", self.token(identity)).parse()?;
        Ok(InterceptedService::new(
            self.channel().await?,
            Bearer(header),
        ))
    }

    /// A mutual-TLS channel presenting `client` (certificate, key), trusting the sandbox CA.
    pub async fn tls_channel(&self, client: Option<(&str, &str)>) -> anyhow::Result<Channel> {
        let ca = self
            .ca
            .as_ref()
            .map(|c| c.cert_pem().to_owned())
            .unwrap_or_default();
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name("localhost");
        if let Some((cert, key)) = client {
            tls = tls.identity(TlsIdentity::from_pem(cert, key));
        }
        Ok(
            Channel::from_shared(format!("https://localhost:{}", self.addr.port()))?
                .tls_config(tls)?
                .connect()
                .await?,
        )
    }

    /// The sandbox CA (with `tls()`).
    pub fn ca(&self) -> Option<&DevCa> {
        self.ca.as_ref()
    }

    /// Every event stored in the events stream, in order.
    pub async fn stored(&self) -> anyhow::Result<Vec<(u64, Event)>> {
        let last = self.last_sequence().await?;
        if last == 0 {
            return Ok(Vec::new());
        }
        let mut replay = self
            .bus
            .replay(self.bus.topology().filter_subject(&[]), Start::All)
            .await?;
        let mut out = Vec::new();
        while let Some(d) = tokio::time::timeout(Duration::from_secs(5), replay.next())
            .await
            .context("replay stalled")?
        {
            let d = d?;
            let seq = d.sequence;
            out.push((seq, d.event));
            if seq >= last {
                break;
            }
        }
        Ok(out)
    }

    /// The events stream's last sequence (0 when empty).
    pub async fn last_sequence(&self) -> anyhow::Result<u64> {
        let status = self.bus.status().await?;
        Ok(status
            .streams
            .iter()
            .find(|s| s.name == self.bus.topology().events_stream)
            .map(|s| s.last_sequence)
            .unwrap_or(0))
    }

    /// Every stored message's raw bytes (headers and payload), as JetStream returns them.
    pub async fn stored_bytes(&self) -> anyhow::Result<Vec<u8>> {
        let last = self.last_sequence().await?;
        let stream = self
            .bus
            .jetstream()
            .get_stream(&self.bus.topology().events_stream)
            .await?;
        let mut out = Vec::new();
        for seq in 1..=last {
            let m = stream.get_raw_message(seq).await?;
            out.extend_from_slice(m.subject.as_bytes());
            out.extend_from_slice(format!("{:?}", m.headers).as_bytes());
            out.extend_from_slice(&m.payload);
        }
        Ok(out)
    }

    /// Every alert stored in the alerts stream, in order.
    pub async fn alerts(&self) -> anyhow::Result<Vec<v1::Alert>> {
        let topology = self.bus.topology();
        let mut stream = self
            .bus
            .jetstream()
            .get_stream(&topology.alerts_stream)
            .await?;
        let last = stream.info().await?.state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let m = stream.get_raw_message(seq).await?;
            out.push(<v1::Alert as prost::Message>::decode(m.payload)?);
        }
        Ok(out)
    }

    /// Run the correlator (built-in rules with a grace of 1 s instead of 30 s, 1 s lateness)
    /// on this sandbox's bus until the returned sender is dropped or sent to.
    pub fn correlate(&self) -> tokio::sync::oneshot::Sender<()> {
        self.correlate_rules(&quick_rules("1s"))
    }

    /// [`Sandbox::correlate`] with the rule file `rules`.
    pub fn correlate_rules(&self, rules: &str) -> tokio::sync::oneshot::Sender<()> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let bus = self.bus.clone();
        let rules = rules.to_owned();
        tokio::spawn(async move {
            let options = timpora_correlator::Options {
                lateness: Duration::from_secs(1),
                tick_every: Duration::from_millis(200),
                ..Default::default()
            };
            let stopped = async {
                let _ = rx.await;
            };
            if let Err(e) = timpora_correlator::run(bus, Some(&rules), options, stopped).await {
                tracing::error!(error = %e, "sandbox correlator stopped");
            }
        });
        tx
    }

    /// Stop the gateway and wait for it to drain.
    pub async fn stop_gateway(&mut self) -> anyhow::Result<()> {
        if let Some(mut running) = self.running.take() {
            running.drain().await?;
        }
        Ok(())
    }

    /// Whether the gateway is still running (it has not crashed).
    pub fn gateway_running(&self) -> bool {
        self.running
            .as_ref()
            .is_some_and(|r| r.is_running("gateway"))
    }
}

/// Synthetic fixtures: invented but well-formed identifiers. Never real people.
pub mod fixtures {
    use super::*;
    use v1::*;

    /// A synthetic NIK from Konawe (74.02), serial `n` (1–9999).
    pub fn nik(n: u32) -> String {
        format!("7402054107{:02}{:04}", 90, n.clamp(1, 9999))
    }

    /// A synthetic passport number.
    pub fn passport(n: u32) -> String {
        format!("X{:07}", n)
    }

    /// A synthetic Indonesian mobile number (E.164).
    pub fn phone(n: u32) -> String {
        format!("+628129{:07}", n)
    }

    /// A person known by NIK and passport.
    pub fn person(n: u32) -> Person {
        Person {
            nik: nik(n),
            passport_number: passport(n),
            ..Default::default()
        }
    }

    /// A recruiter known by phone.
    pub fn recruiter(n: u32) -> Recruiter {
        Recruiter {
            phone: phone(n),
            ..Default::default()
        }
    }

    /// Through the gateway: a village warning (`id`) from Konawe's PIMPASA officer that person
    /// `n` plans to leave.
    pub async fn village_warning(
        hub: &crate::sandbox::Sandbox,
        id: &str,
        n: u32,
    ) -> anyhow::Result<()> {
        use v1::desa_service_client::DesaServiceClient;
        let mut desa = DesaServiceClient::new(hub.as_agency("desa/74.02.05.2001").await?);
        desa.submit_community_report(SubmitCommunityReportRequest {
            meta: Some(meta(id)),
            report: Some(CommunityReport {
                village_code: "74.02.05.2001".into(),
                reporter_role: ReporterRole::Pimpasa as i32,
                kind: CommunityReportKind::ResidentPlanningDeparture as i32,
                persons: vec![person(n)],
                ..Default::default()
            }),
        })
        .await?;
        Ok(())
    }

    /// Through the gateway: a village warning about person `n` (`desa-1`), then a deferred
    /// passport interview of that person with risk indicators at Kendari (`kdi-1`): R2's input.
    pub async fn village_warning_then_interview(
        hub: &crate::sandbox::Sandbox,
        n: u32,
    ) -> anyhow::Result<()> {
        use v1::imigrasi_service_client::ImigrasiServiceClient;
        village_warning(hub, "desa-1", n).await?;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut kdi = ImigrasiServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await?);
        kdi.record_passport_interview(RecordPassportInterviewRequest {
            meta: Some(meta("kdi-1")),
            interview: Some(interview(n)),
        })
        .await?;
        Ok(())
    }

    /// Through the gateway: BP3MI repatriates person `n` as a victim (`rep-<n>`, sensitive by
    /// default), then Kendari interviews that person for a passport (`kdi-r<n>`): R6's input.
    pub async fn victim_repatriated_then_interview(
        hub: &crate::sandbox::Sandbox,
        n: u32,
    ) -> anyhow::Result<()> {
        use v1::bp3mi_service_client::Bp3miServiceClient;
        use v1::imigrasi_service_client::ImigrasiServiceClient;
        let mut bp3mi = Bp3miServiceClient::new(hub.as_agency("bp3mi/bp3mi-sultra").await?);
        bp3mi
            .record_repatriation(RecordRepatriationRequest {
                meta: Some(meta(&format!("rep-{n}"))),
                repatriation: Some(Repatriation {
                    person: Some(person(n)),
                    country: "KH".into(),
                    reason: RepatriationReason::Victim as i32,
                    home_village: "74.02.05.2001".into(),
                }),
            })
            .await?;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut kdi = ImigrasiServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await?);
        kdi.record_passport_interview(RecordPassportInterviewRequest {
            meta: Some(meta(&format!("kdi-r{n}"))),
            interview: Some(interview(n)),
        })
        .await?;
        Ok(())
    }

    /// An action on alert `id` by `operator` in `role` (both as the caller states them).
    pub fn action(id: &str, operator: &str, role: &str) -> Option<AlertAction> {
        Some(AlertAction {
            alert_id: id.into(),
            operator: operator.into(),
            role: role.into(),
            ..Default::default()
        })
    }

    /// Envelope fields for an event that happened just now in Konawe.
    pub fn meta(id: &str) -> EventMeta {
        EventMeta {
            id: id.to_owned(),
            time: Some(SystemTime::now().into()),
            region: "74.02.05.2001".into(),
            classification: 0,
        }
    }

    /// A valid passport interview, deferred, with a recruiter mentioned.
    pub fn interview(n: u32) -> PassportInterview {
        PassportInterview {
            applicant: Some(person(n)),
            declared_purpose: TravelPurpose::Tourism as i32,
            destination_country: "KH".into(),
            outcome: InterviewOutcome::Deferred as i32,
            indicators: vec![
                Indicator::PurposeInconsistent as i32,
                Indicator::HighRiskDestination as i32,
            ],
            recruiters: vec![recruiter(n)],
        }
    }

    /// A generic-bus event wrapping an interview.
    pub fn interview_event(id: &str, n: u32) -> Event {
        let m = meta(id);
        Event {
            id: m.id,
            time: m.time,
            region: m.region,
            payload: Some(event::Payload::PassportInterview(interview(n))),
            ..Default::default()
        }
    }
}

/// The built-in rules with every decision's `grace` (how long a batch may take to arrive) set to
/// `grace`: tests do not wait the 30 s of the default.
pub fn quick_rules(grace: &str) -> String {
    timpora_rules::DEFAULT_RULES.replacen("grace = \"30s\"", &format!("grace = \"{grace}\""), 1)
}
