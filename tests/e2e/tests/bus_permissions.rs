//! Least privilege on the bus, against a real nats-server secured as `timpora up` secures its
//! own (one nkey user per component, anonymous connections refused, TLS with a development CA):
//! who may connect, publish where, change or delete what, and read whose replies. Every refusal
//! is checked next to the same act by the identity entitled to it, so a refusal cannot pass for
//! a server that simply did not answer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use timpora_bus::{Bus, ErrorKind, Identity, NatsOptions, NatsTls, Topology};
use timpora_hub::NatsConfig;
use timpora_natsd::NatsServer;

/// How long a refused JetStream call is waited for (a refused publish is never answered).
const REFUSED_AFTER: Duration = Duration::from_millis(1500);

struct Secured {
    _dir: tempfile::TempDir,
    _server: NatsServer,
    nats: NatsConfig,
    topology: Topology,
}

impl Secured {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let topology = Topology::default();
        let (server, nats) = timpora_testkit::dev::secured_nats(dir.path(), &topology).unwrap();
        Self {
            _dir: dir,
            _server: server,
            nats,
            topology,
        }
    }

    async fn connect(&self, id: Identity) -> Bus {
        Bus::connect(self.nats.options(id), id.name(), self.topology.clone())
            .await
            .unwrap_or_else(|e| panic!("{id} cannot connect: {e}"))
    }

    /// A JetStream context as `id` that gives up on an unanswered call soon.
    async fn js(&self, id: Identity) -> jetstream::Context {
        let bus = self.connect(id).await;
        jetstream::ContextBuilder::new()
            .timeout(REFUSED_AFTER)
            .build(bus.client().clone())
    }

    async fn admin(&self) -> Bus {
        let admin = self.connect(Identity::Admin).await;
        admin.ensure_topology().await.unwrap();
        admin
    }
}

/// Whether `js` gets `subject` stored (acknowledged by JetStream).
async fn stored(js: &jetstream::Context, subject: &str) -> bool {
    match js.publish(subject.to_owned(), "x".into()).await {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_plaintext_and_untrusted_connections_are_refused() {
    let s = Secured::start();
    let _ = s.admin().await;
    let url = s.nats.url.clone();
    let tls = s.nats.tls.clone();
    let seed = std::fs::read_to_string(
        Identity::Gateway.credentials_in(s.nats.credentials_dir.as_deref().unwrap()),
    )
    .unwrap();

    // No credentials, over TLS.
    let anonymous = NatsOptions {
        url: url.clone(),
        tls: tls.clone(),
        ..Default::default()
    };
    let e = Bus::connect(anonymous, "anon", Topology::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");

    // The gateway's credentials, without TLS.
    let plaintext = NatsOptions {
        tls: None,
        ..s.nats.options(Identity::Gateway)
    };
    let e = Bus::connect(plaintext, "plain", Topology::default())
        .await
        .unwrap_err();
    assert!(!e.to_string().contains(seed.trim()), "{e}");

    // TLS that trusts another CA.
    let other = tempfile::tempdir().unwrap();
    let ca = timpora_testkit::pki::DevCa::generate("not the hub's CA").unwrap();
    let ca_file = other.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let untrusted = NatsOptions {
        tls: Some(NatsTls {
            ca: ca_file,
            cert: None,
            key: None,
        }),
        ..s.nats.options(Identity::Gateway)
    };
    let e = Bus::connect(untrusted, "untrusted", Topology::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");

    // A password in the URL never shows in the error.
    let with_password = NatsOptions {
        url: url.replace("nats://", "nats://gw:hunter2-secret@"),
        tls: tls.clone(),
        ..Default::default()
    };
    let e = Bus::connect(with_password, "pw", Topology::default())
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("hunter2-secret"), "{e}");

    // The same identity with its credentials over TLS gets in.
    s.connect(Identity::Gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_identity_publishes_only_what_it_owns() {
    let s = Secured::start();
    let admin = s.admin().await;
    let subjects = [
        ("agency event", "timpora.events.polri.police_report.74.02"),
        ("clock tick", "timpora.events.hub.clock_tick.0"),
        ("raised alert", "timpora.alerts.raised.alr_forged"),
        ("lifecycle step", "timpora.alerts.lifecycle.alr_forged"),
        ("access record", "timpora.access.alert.alr_forged"),
        ("checkpoint", "timpora.tlog.events.checkpoint"),
        ("claim on a part", "$KV.TIMPORA_CORRELATORS.part.0-of-2"),
    ];
    let owners = |what: &str| -> &[Identity] {
        match what {
            "agency event" => &[Identity::Gateway],
            "clock tick" => &[Identity::Correlator],
            "raised alert" => &[Identity::Correlator],
            "lifecycle step" => &[Identity::Gateway],
            "access record" => &[Identity::Gateway],
            "checkpoint" => &[Identity::Sealer],
            "claim on a part" => &[Identity::Correlator],
            _ => unreachable!(),
        }
    };
    let mut attempts = Vec::new();
    for id in Identity::ALL {
        let js = s.js(id).await;
        for (what, subject) in subjects {
            let js = js.clone();
            attempts.push(async move { (id, what, stored(&js, subject).await) });
        }
    }
    let results = futures::future::join_all(attempts).await;
    let mut expected_stored = std::collections::HashMap::new();
    for (id, what, ok) in results {
        let entitled = id == Identity::Admin || owners(what).contains(&id);
        assert_eq!(ok, entitled, "{id} storing a {what}");
        if ok {
            *expected_stored.entry(what).or_insert(0u64) += 1;
        }
    }
    // What was refused is not in the streams: exactly the entitled copies are.
    let js = admin.jetstream();
    for (what, subject) in subjects {
        let stream = js.stream_by_subject(subject).await.unwrap();
        let info = js
            .get_stream(&stream)
            .await
            .unwrap()
            .info_with_subjects(subject)
            .await
            .unwrap()
            .next()
            .await
            .map(|r| r.unwrap().1 as u64)
            .unwrap_or(0);
        // A key-value bucket keeps one value per key.
        let expected = match subject.starts_with("$KV.") {
            true => expected_stored[what].min(1),
            false => expected_stored[what],
        };
        assert_eq!(info, expected, "{what} on {subject}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_admin_changes_deletes_or_purges() {
    let s = Secured::start();
    let admin = s.admin().await;
    let t = &s.topology;
    // A scratch stream that allows deletion, so that only permissions stand in the way.
    admin
        .jetstream()
        .create_stream(stream::Config {
            name: "SCRATCH".into(),
            subjects: vec!["scratch.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for _ in 0..3 {
        admin
            .jetstream()
            .publish("scratch.x", "x".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let lowered = stream::Config {
        max_messages: 10,
        ..t.events_stream_config()
    };
    let refusals = Identity::ALL
        .into_iter()
        .filter(|i| *i != Identity::Admin)
        .map(|id| {
            let (s, lowered) = (&s, &lowered);
            async move {
                let js = s.js(id).await;
                let scratch = js.get_stream_no_info("SCRATCH").await.unwrap();
                [
                    ("lowered a limit", js.update_stream(lowered).await.is_ok()),
                    (
                        "deleted a stream",
                        js.delete_stream(&s.topology.alerts_stream).await.is_ok(),
                    ),
                    ("deleted a message", scratch.delete_message(1).await.is_ok()),
                    ("purged", scratch.purge().await.is_ok()),
                ]
                .map(|(what, done)| (id, what, done))
            }
        });
    for (id, what, done) in futures::future::join_all(refusals)
        .await
        .into_iter()
        .flatten()
    {
        assert!(!done, "{id} {what}");
    }
    let js = admin.jetstream();
    let events = js.get_stream(&t.events_stream).await.unwrap();
    assert_eq!(
        events.cached_info().config.max_messages,
        -1,
        "limit unchanged"
    );
    js.get_stream(&t.alerts_stream)
        .await
        .expect("alerts stream still there");
    let mut scratch = js.get_stream("SCRATCH").await.unwrap();
    assert_eq!(
        scratch.info().await.unwrap().state.messages,
        3,
        "nothing deleted"
    );
    // The admin may do each of these.
    js.update_stream(&lowered).await.unwrap();
    js.update_stream(&t.events_stream_config()).await.unwrap();
    assert!(scratch.delete_message(1).await.unwrap());
    scratch.purge().await.unwrap();
    js.delete_stream("SCRATCH").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_identity_reads_what_it_is_not_entitled_to() {
    let s = Secured::start();
    let admin = s.admin().await;
    let t = &s.topology;
    assert!(readable(&s, Identity::Gateway, &t.access_stream).await);
    assert!(!readable(&s, Identity::Correlator, &t.access_stream).await);
    assert!(readable(&s, Identity::Correlator, &t.events_stream).await);
    assert!(!readable(&s, Identity::Witness, &t.events_stream).await);
    let checkpoints = format!("OBJ_{}", t.checkpoint_bucket);
    assert!(readable(&s, Identity::Correlator, &checkpoints).await);
    assert!(!readable(&s, Identity::Gateway, &checkpoints).await);
    assert!(!readable(&s, Identity::Auditor, &checkpoints).await);

    // Replies to the gateway come to its own inbox, which no other component can listen on.
    let (_c, mut by_correlator) = eavesdrop(&s, Identity::Correlator).await;
    let (_a, mut by_admin) = eavesdrop(&s, Identity::Admin).await;
    let gateway = s.connect(Identity::Gateway).await;
    gateway.check_topology().await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(3), by_admin.next()).await;
    assert!(matches!(heard, Ok(Some(_))), "the admin hears it (control)");
    let heard = tokio::time::timeout(Duration::from_secs(1), by_correlator.next()).await;
    assert!(
        !matches!(heard, Ok(Some(_))),
        "the correlator heard the gateway's reply"
    );
    drop(admin);
}

/// Whether `id` can read `stream` (an ordered consumer on it).
async fn readable(s: &Secured, id: Identity, stream: &str) -> bool {
    let js = s.js(id).await;
    match js.get_stream_no_info(stream).await {
        Ok(st) => st
            .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
            .await
            .is_ok(),
        Err(_) => false,
    }
}

/// `id` listening on the gateway's inbox.
async fn eavesdrop(s: &Secured, id: Identity) -> (Bus, async_nats::Subscriber) {
    let bus = s.connect(id).await;
    let sub = bus
        .client()
        .subscribe(format!("{}.>", Identity::Gateway.inbox_prefix()))
        .await
        .unwrap();
    bus.client().flush().await.unwrap();
    (bus, sub)
}
