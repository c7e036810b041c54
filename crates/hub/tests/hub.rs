//! The hub as a whole against a real nats-server: a component that stops by itself stops the
//! hub, naming it, and the others are drained; a stop request drains everything in time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::net::TcpStream;
use std::time::Duration;

use timpora_hub::{Components, Config, Error, Options};
use timpora_natsd::NatsServer;

fn config(nats: &NatsServer) -> Config {
    let mut cfg = Config::default();
    cfg.nats.url = nats.url();
    cfg.gateway.listen = "127.0.0.1:0".parse().unwrap();
    cfg.gateway.pseudonym.keys = vec![timpora_gateway::KeyConfig {
        version: 1,
        key_file: None,
        key_hex: Some("cd".repeat(32)),
    }];
    cfg.shutdown.drain_secs = 5;
    cfg
}

fn both() -> Options {
    Options {
        components: Components {
            gateway: true,
            correlator: true,
            ..Components::default()
        },
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_fails_stops_the_hub_naming_it_and_the_others_drain() {
    let nats = NatsServer::start().unwrap();
    let hub = config(&nats).build(both()).await.unwrap();
    let gateway = hub.gateway_addr().unwrap();
    // The events stream goes away between provisioning and start: the correlator cannot read.
    timpora_bus::Bus::connect(&nats.url(), "t", Default::default())
        .await
        .unwrap()
        .jetstream()
        .delete_stream("TIMPORA_EVENTS")
        .await
        .unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        hub.spawn().run_until(futures::future::pending()),
    )
    .await
    .expect("the hub went on with a failed component");
    match result {
        Err(Error::Stopped { component, reason }) => {
            assert_eq!(component, "correlator");
            assert!(reason.contains("timpora bus init"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // The gateway was drained with it: nothing listens any more.
    assert!(TcpStream::connect(gateway).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_request_drains_every_component() {
    let nats = NatsServer::start().unwrap();
    let hub = config(&nats).build(both()).await.unwrap();
    let gateway = hub.gateway_addr().unwrap();
    assert!(TcpStream::connect(gateway).is_ok());
    let running = hub.spawn();
    assert!(running.is_running("gateway") && running.is_running("correlator"));
    let stopped = tokio::time::timeout(
        Duration::from_secs(30),
        running.run_until(tokio::time::sleep(Duration::from_millis(500))),
    )
    .await
    .expect("the hub did not drain");
    stopped.unwrap();
    assert!(TcpStream::connect(gateway).is_err());
}

#[tokio::test]
async fn a_configuration_that_cannot_run_is_refused_before_anything_starts() {
    let nats = NatsServer::start().unwrap();
    let mut cfg = config(&nats);
    cfg.correlator.lateness = "a while".into();
    let err = cfg.build(both()).await.err().unwrap();
    assert!(err.to_string().contains("correlator.lateness"), "{err}");
    let mut cfg = config(&nats);
    cfg.demo.rate = 0.0;
    let err = cfg
        .build(Options {
            components: Components {
                demo: true,
                ..Components::default()
            },
            ..Options::default()
        })
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("rate"), "{err}");
}
