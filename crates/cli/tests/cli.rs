//! The real binary against a real nats-server: `dev init`, `gateway` (mutual TLS with the
//! generated credentials), `bus status`, `publish` with bad lines, `subscribe`, graceful stop.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use timpora_natsd::{NatsServer, free_port};

mod common;
use common::*;

#[test]
fn publish_subscribe_and_status_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let nats_port = free_port().unwrap();
    let out = run(timpora(dir.path()).args([
        "dev",
        "init",
        "--listen",
        &listen,
        "--nats-url",
        &format!("nats://127.0.0.1:{nats_port}"),
    ]));
    assert!(out.status.success());
    // The server as `timpora up` starts it: each component as its own user, over TLS.
    let _nats = timpora_testkit::dev::nats_server(dir.path(), Some(nats_port)).unwrap();

    let gateway = timpora(dir.path())
        .arg("gateway")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut gateway = Killed(gateway);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gateway did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The gateway listens before it has provisioned the topology: ask until it has.
    let names = loop {
        let status = run(timpora(dir.path()).args(["bus", "status", "--json"]));
        assert!(status.status.success());
        let status: Value = serde_json::from_slice(&status.stdout).unwrap();
        let names: Vec<String> = status["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        if names.len() >= 11 || Instant::now() > deadline {
            break names;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        names,
        [
            "KV_TIMPORA_CORRELATORS",
            "KV_TIMPORA_HOLDS",
            "KV_TIMPORA_RULES",
            "KV_TIMPORA_TLOG",
            "OBJ_TIMPORA_CHECKPOINTS",
            "OBJ_TIMPORA_TLOG_TILES",
            "TIMPORA_ACCESS",
            "TIMPORA_ALERTS",
            "TIMPORA_EVENTS",
            "TIMPORA_HOLDS",
            "TIMPORA_TLOG"
        ]
    );

    let now = rfc3339_now();
    let interview = |id: &str, nik: &str| {
        format!(
            r#"{{"event":{{"id":"{id}","time":"{now}","region":"74.02.05.2001","passport_interview":{{"applicant":{{"nik":"{nik}"}},"declared_purpose":"TRAVEL_PURPOSE_TOURISM","destination_country":"KH","outcome":"INTERVIEW_OUTCOME_DEFERRED"}}}}}}"#
        )
    };
    let ndjson = [
        interview("cli-1", "7402054107900001"),
        "{this is not json".to_owned(),
        interview("cli-2", "12345"),
        String::new(),
        interview("cli-3", "7402054107900003"),
        interview("cli-1", "7402054107900001"),
    ]
    .join("\n");
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, ndjson).unwrap();
    let out = run(timpora(dir.path())
        .arg("publish")
        .arg(&file)
        .args(["--identity", "imigrasi/kanim-kendari"]));
    assert_eq!(out.status.code(), Some(1), "some lines were not stored");
    let results = lines(&out);
    let by_line = |n: u64| {
        results
            .iter()
            .find(|r| r["line"] == n)
            .unwrap_or_else(|| panic!("line {n} in {results:?}"))
    };
    assert!(
        by_line(2)["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(by_line(1)["sequence"], 1);
    assert_eq!(by_line(3)["code"], "InvalidArgument");
    assert_eq!(
        by_line(3)["fields"][0]["field"],
        "event.passport_interview.applicant.nik"
    );
    assert_eq!(by_line(5)["sequence"], 2);
    assert_eq!(by_line(6)["duplicate"], true);
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("2 stored, 1 duplicates, 1 rejected, 1 unreadable lines"),
        "{summary}"
    );

    let out = run(timpora(dir.path()).args([
        "subscribe",
        "--identity",
        "polri/polda-sultra",
        "--idle-exit",
        "4",
    ]));
    assert!(out.status.success());
    let events = lines(&out);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event"]["source"], "imigrasi/kanim-kendari");
    assert!(
        events[0]["event"]["subject"]["id"]
            .as_str()
            .unwrap()
            .starts_with("psn_")
    );
    let cursor = events[0]["cursor"].as_str().unwrap().to_owned();
    let out = run(timpora(dir.path()).args([
        "subscribe",
        "--identity",
        "polri/polda-sultra",
        "--cursor",
        &cursor,
        "--limit",
        "1",
    ]));
    assert_eq!(lines(&out)[0]["event"]["id"], "cli-3");

    // The shipped examples are valid: every line stored, then every line a duplicate.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for (file, identity) in [
        ("imigrasi-kanim-kendari.ndjson", "imigrasi/kanim-kendari"),
        ("desa-74.02.05.2001.ndjson", "desa/74.02.05.2001"),
    ] {
        for duplicate in [false, true] {
            let out = run(timpora(dir.path())
                .arg("publish")
                .arg(examples.join(file))
                .args(["--identity", identity]));
            assert!(out.status.success(), "{file}");
            let results = lines(&out);
            assert!(!results.is_empty());
            assert!(
                results.iter().all(|r| r["duplicate"] == duplicate),
                "{file}: {results:?}"
            );
        }
    }

    // A village may not read; the error says so and the exit status is non-zero.
    let out = run(timpora(dir.path()).args([
        "subscribe",
        "--identity",
        "desa/74.02.05.2001",
        "--limit",
        "1",
    ]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("may not read"));

    // SIGTERM drains and exits cleanly.
    let pid = gateway.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(s) = gateway.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "gateway did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "{code:?}");
}

#[test]
fn cli_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let missing =
        run(timpora(dir.path()).args(["--config", "/nonexistent.toml", "config", "print"]));
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
    let port = free_port().unwrap();
    let unreachable = run(timpora(dir.path()).args([
        "bus",
        "status",
        "--nats-url",
        &format!("nats://127.0.0.1:{port}"),
    ]));
    assert!(!unreachable.status.success());
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("is nats-server running"));
    let printed = run(timpora(dir.path()).args(["config", "print"]));
    assert!(String::from_utf8_lossy(&printed.stdout).contains("duplicate_window_secs = 120"));

    // The console: no accounts, a malformed hash, a short password are clear errors.
    let port = free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let none = run(timpora(dir.path()).args(["console", "--listen", &listen]));
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no console accounts"));
    let cfg = dir.path().join("console.toml");
    std::fs::write(
        &cfg,
        "[[console.accounts]]\nusername = \"op\"\ndisplay_name = \"Op\"\nrole = \"operator\"\n\
         identity = \"ops/timpora-kendari\"\npassword_hash = \"plain-text\"\n",
    )
    .unwrap();
    let bad = run(timpora(dir.path())
        .arg("--config")
        .arg(&cfg)
        .args(["console", "--listen", &listen]));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("account op: password_hash"));
    let hash = |password: &str| {
        let mut child = timpora(dir.path())
            .args(["console", "hash-password"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let short = hash("short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));
    let good = hash("a long enough passphrase");
    assert!(good.status.success());
    assert!(String::from_utf8_lossy(&good.stdout).starts_with("$argon2id$"));
}

#[test]
fn bench_ingest_reports_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(timpora(dir.path()).args([
        "bench",
        "ingest",
        "--json",
        "--events",
        "2000",
        "--samples",
        "50",
    ]));
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "hub_events_per_s",
        "raw_events_per_s",
        "ratio",
        "unary_p50_us",
        "unary_p99_us",
        "raw_sync_p50_us",
        "grpc_floor_p50_us",
        "unary_floor_ratio",
    ] {
        assert!(report[field].as_f64().unwrap() > 0.0, "{field} in {report}");
    }
    assert_eq!(report["events"], 2000);
    assert!(report["event_bytes"].as_u64().unwrap() > 100);
}

#[test]
fn bench_soak_reports_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(timpora(dir.path()).args([
        "bench",
        "soak",
        "--json",
        "--duration",
        "6s",
        "--rate",
        "100",
        "--trace-sampling",
        "1",
    ]));
    assert!(out.status.success());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["sent"], 600, "{r}");
    assert_eq!(r["stored"], 600, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["hub_log_errors"], 0, "{r}");
    for field in [
        "rate_sustained",
        "publish_p50_us",
        "publish_p99_us",
        "publish_max_us",
    ] {
        assert!(r[field].as_f64().unwrap() > 0.0, "{field} in {r}");
    }
    for process in ["hub_rss", "nats_rss"] {
        for at in ["start_mib", "middle_mib", "end_mib", "end_over_middle"] {
            assert!(
                r[process][at].as_f64().unwrap() > 0.0,
                "{process}.{at} in {r}"
            );
        }
    }
    for lag in ["correlator_lag", "sealer_lag", "sealer_checkpoint_lag"] {
        assert!(
            r[lag]["zero_after_s"].as_f64().unwrap() >= 0.0,
            "{lag} in {r}"
        );
    }
    // Telemetry was on: the hub's spans reached the benchmark's receiver, and its traffic
    // raised alerts.
    assert!(r["spans_received"].as_u64().unwrap() > 600, "{r}");
    assert!(r["alerts"].as_u64().unwrap() > 0, "{r}");
}

#[test]
fn bench_audit_reports_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(timpora(dir.path()).args([
        "bench",
        "audit",
        "--json",
        "--events",
        "3000",
        "--rate",
        "500",
        "--lag-secs",
        "2",
    ]));
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "raw_read_per_s",
        "replay_events_per_s",
        "replay_ratio",
        "seal_events_per_s",
        "verify_events_per_s",
        "verify_ratio",
        "lag_rate_per_s",
        "seal_lag_p50_ms",
        "seal_lag_p99_ms",
        "checkpoints",
    ] {
        assert!(report[field].as_f64().unwrap() > 0.0, "{field} in {report}");
    }
    // About two seconds at 500 events/s, each covered by a checkpoint and measured.
    let lag_events = report["lag_events"].as_u64().unwrap();
    assert!((900..=1100).contains(&lag_events), "{report}");
    assert!(report["events"].as_u64().unwrap() >= 3000);
}

#[test]
fn bench_correlate_reports_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(timpora(dir.path()).args([
        "bench",
        "correlate",
        "--json",
        "--events",
        "4000",
        "--persons",
        "400",
        "--rate",
        "500",
        "--live-secs",
        "2",
        "--checkpoint-every",
        "500ms",
    ]));
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "correlator_events_per_s",
        "raw_consume_per_s",
        "ratio",
        "entities",
        "state_entries",
        "checkpoint_bytes",
        "alert_samples",
        "alert_p50_ms",
        "alert_p99_ms",
    ] {
        assert!(report[field].as_f64().unwrap() > 0.0, "{field} in {report}");
    }
    // Reported, but at 4,000 events the state (about a megabyte) is within the allocator's
    // noise: the resident growth can come out as 0. The full benchmark measures it.
    assert!(
        report["bytes_per_entity"].as_f64().unwrap() >= 0.0,
        "{report}"
    );
    // Background events plus the storylines woven in.
    assert!(report["events"].as_u64().unwrap() > 4000, "{report}");
    // One sequence storyline (three alerts) per 50 live events.
    assert!(report["alert_samples"].as_u64().unwrap() >= 50, "{report}");
}

#[test]
fn rules_check_reports_lines_and_refuses_invalid_files() {
    let dir = tempfile::tempdir().unwrap();
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/default.toml");
    let ok = run(timpora(dir.path()).args(["rules", "check"]).arg(&default));
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("6 rules: R1 (high)"));
    let printed = run(timpora(dir.path()).args(["rules", "default"]));
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout),
        std::fs::read_to_string(&default).unwrap()
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "version = \"x\"\n[[rule]]\nid = \"Z\"\nname = \"z\"\nseverity = \"high\"\ngroup_by = \"person\"\n\
         [rule.when]\ntypes = [\"timpora.bp3mi.repatriation.v1\"]\nreason = [\"VICTIMS\"]\n[rule.then]\nwithin = \"2w\"\n",
    )
    .unwrap();
    let out = run(timpora(dir.path()).args(["rules", "check"]).arg(&bad));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:9: rule Z: when.reason: unknown value \"VICTIMS\""),
        "{err}"
    );
    assert!(err.contains("bad.toml:11: rule Z: then.within"), "{err}");
}

#[test]
fn rules_test_backtests_recorded_events_against_expected_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/default.toml");
    let events = dir.path().join("events.ndjson");
    std::fs::write(
        &events,
        [
            r#"{"id":"w1","source":"desa/74.02.05.2001","type":"timpora.desa.community_report.v1","time":"2026-01-01T00:00:00Z","region":"74.02.05.2001","entities":[{"kind":"ENTITY_KIND_PERSON","id":"psn_a"}],"communityReport":{"kind":"COMMUNITY_REPORT_KIND_RESIDENT_PLANNING_DEPARTURE"}}"#,
            r#"{"sequence":"2","cursor":"c1.2","event":{"id":"i1","source":"imigrasi/kanim-kendari","type":"timpora.imigrasi.passport_interview.v1","time":"2026-01-02T00:00:00Z","region":"74.71","entities":[{"kind":"ENTITY_KIND_PERSON","id":"psn_a"}],"passportInterview":{"outcome":"INTERVIEW_OUTCOME_ISSUED","indicators":["INDICATOR_SPONSOR_PRESENT"]}}}"#,
            r#"{"id":"i2","source":"imigrasi/kanim-kendari","type":"timpora.imigrasi.passport_interview.v1","time":"2026-01-03T00:00:00Z","region":"74.71","entities":[{"kind":"ENTITY_KIND_PERSON","id":"psn_b"}],"passportInterview":{"outcome":"INTERVIEW_OUTCOME_DEFERRED"}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let expect = dir.path().join("expect.ndjson");
    let r2 = r#"{"ruleId":"R2","groupKey":"psn_a","evidence":["desa/74.02.05.2001/w1","imigrasi/kanim-kendari/i1"]}"#;
    std::fs::write(&expect, r2).unwrap();
    let backtest = |extra: &[&str]| {
        run(timpora(dir.path())
            .args(["rules", "test"])
            .arg(&rules)
            .arg("--events")
            .arg(&events)
            .arg("--expect")
            .arg(&expect)
            .args(extra))
    };
    let out = backtest(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("3 events (0 late), 1 alerts expected, 1 produced, 1 matched")
    );

    // Past R1's horizon the unregistered deferral of psn_b is decided: a difference.
    let out = backtest(&["--until", "2026-03-01T00:00:00Z"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("unexpected: R1 psn_b [imigrasi/kanim-kendari/i2]"),
        "{stdout}"
    );

    // An expected alert that the rules do not produce.
    let missing = r#"{"ruleId":"R6","groupKey":"psn_a","evidence":["x/y/z"]}"#;
    std::fs::write(&expect, format!("{r2}\n{missing}\n")).unwrap();
    let out = backtest(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("missing:    R6 psn_a [x/y/z]"));

    // An unreadable line is named with its number.
    std::fs::write(&events, "{\"id\":\"x\"}\nnot json\n").unwrap();
    let out = backtest(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("events.ndjson:2: not valid JSON"));
}

#[test]
fn rules_apply_and_sighup_switch_the_running_set_and_bad_files_change_nothing() {
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let dir = tempfile::tempdir().unwrap();
    let default = include_str!("../../../rules/default.toml");
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, default).unwrap();
    let metrics_port = free_port().unwrap();
    let correlator = timpora(dir.path())
        .args(["correlator", "--nats-url", &url, "--rules"])
        .arg(&rules)
        .args(["--metrics", &format!("127.0.0.1:{metrics_port}")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let correlator = Killed(correlator);
    let running = |v: &Value, version: &str| v["correlator"]["version"] == version;
    wait_status(dir.path(), &url, |v| running(v, "2026.12-1"));

    // The same figures as Prometheus metrics.
    let text = scrape(metrics_port);
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    assert!(
        text.contains("timpora_correlator_state_cap 5000000"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE timpora_correlator_events counter")
            && text.contains("\ntimpora_correlator_events_total "),
        "{text}"
    );
    assert!(text.contains("version=\"2026.12-1\""), "{text}");

    // `rules apply` with a bad file: precise errors, exit 1, nothing changes.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        default.replacen("within = \"14d\"", "within = \"14 days\"", 1),
    )
    .unwrap();
    let out = run(timpora(dir.path())
        .args(["rules", "apply", "--nats-url", &url])
        .arg(&bad));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:") && stderr.contains("rule R3"),
        "{stderr}"
    );
    let status = wait_status(dir.path(), &url, |_| true);
    assert_eq!(status["active"]["version"], "2026.12-1");

    // A good one: the running correlator switches without a restart.
    let good = dir.path().join("good.toml");
    std::fs::write(&good, default.replacen("2026.12-1", "2026.11-2", 1)).unwrap();
    let out = run(timpora(dir.path())
        .args(["rules", "apply", "--nats-url", &url])
        .arg(&good));
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("the correlator runs it"), "{stdout}");
    wait_status(dir.path(), &url, |v| running(v, "2026.11-2"));

    // SIGHUP re-reads --rules: an invalid file is ignored, a valid one is applied.
    let hup = || {
        let ok = Command::new("kill")
            .args(["-HUP", &correlator.0.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    std::fs::write(&rules, "version = \"x\"\n[[rule]]\nid = 1\n").unwrap();
    hup();
    std::thread::sleep(Duration::from_millis(500));
    let status = wait_status(dir.path(), &url, |_| true);
    assert_eq!(status["correlator"]["version"], "2026.11-2", "{status}");
    std::fs::write(&rules, default.replacen("2026.12-1", "2026.11-3", 1)).unwrap();
    hup();
    wait_status(dir.path(), &url, |v| running(v, "2026.11-3"));
}

#[test]
fn alerts_commands_list_show_and_act_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("nats://127.0.0.1:{}", free_port().unwrap());
    let out =
        run(timpora(dir.path()).args(["dev", "init", "--listen", &listen, "--nats-url", &url]));
    assert!(out.status.success());
    let _nats = timpora_testkit::dev::nats_server(
        dir.path(),
        url.rsplit(':').next().and_then(|p| p.parse().ok()),
    )
    .unwrap();
    let _gateway = Logged::spawn(timpora(dir.path()).arg("gateway"), dir.path(), "gateway");
    let _correlator = Logged::spawn(
        timpora(dir.path()).args(["correlator", "--lateness", "1s"]),
        dir.path(),
        "correlator",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gateway did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Deferred at Kendari, then tried at Palu: R3.
    publish_deferred_then_another_office(dir.path());
    let ops = ["--identity", "ops/timpora-kendari"];

    let out = run(timpora(dir.path())
        .args([
            "alerts",
            "tail",
            "--json",
            "--limit",
            "1",
            "--idle-exit",
            "20",
        ])
        .args(ops));
    assert!(out.status.success());
    let tailed = lines(&out);
    assert_eq!(tailed.len(), 1, "{tailed:?}");
    let id = tailed[0]["record"]["alert"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(tailed[0]["record"]["alert"]["ruleId"], "R3");

    let out = run(timpora(dir.path())
        .args(["alerts", "list", "--json", "--rule", "R3", "--region", "74"])
        .args(ops));
    assert_eq!(lines(&out).len(), 1);
    let out = run(timpora(dir.path())
        .args(["alerts", "list", "--json", "--severity", "critical"])
        .args(ops));
    assert!(lines(&out).is_empty());
    let out = run(timpora(dir.path()).args(["alerts", "list"]).args(ops));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("R3") && text.contains("74.02.05.2001 (Konawe, Sulawesi Tenggara)"),
        "{text}"
    );

    let out = run(timpora(dir.path())
        .args(["alerts", "show", &id, "--json"])
        .args(ops));
    assert!(out.status.success());
    let shown = &lines(&out)[0];
    assert_eq!(shown["events"].as_array().unwrap().len(), 2, "{shown}");

    // A third office: the same alert, grown, as the list says.
    publish_deferred_at(dir.path(), "imigrasi/tpi-cgk", "cgk-1");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = run(timpora(dir.path()).args(["alerts", "list"]).args(ops));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("[grown 1×, 3 pieces of evidence]") {
            assert_eq!(text.lines().count(), 1, "one alert: {text}");
            assert!(text.contains(&id), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "not grown: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let out = run(timpora(dir.path())
        .args([
            "alerts",
            "ack",
            &id,
            "--json",
            "--operator",
            "Operator A (synthetic)",
            "--role",
            "operator",
        ])
        .args(ops));
    assert!(out.status.success());
    let acked = &lines(&out)[0];
    assert_eq!(acked["status"], "ALERT_STATUS_ACKNOWLEDGED");
    assert_eq!(acked["history"][0]["actor"], "ops/timpora-kendari");
    assert_eq!(acked["history"][0]["role"], "operator");

    // Operations staff act for people: without saying who and in which role, nothing happens.
    let out = run(timpora(dir.path()).args(["alerts", "ack", &id]).args(ops));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("InvalidArgument") && stderr.contains("action.operator"),
        "{stderr}"
    );

    let out = run(timpora(dir.path())
        .args(["alerts", "ack", &id])
        .env("TIMPORA_OPERATOR", "Operator A (synthetic)")
        .env("TIMPORA_ROLE", "operator")
        .args(ops));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("FailedPrecondition") && stderr.contains("ACKNOWLEDGED"),
        "{stderr}"
    );

    // An operator may not resolve; a supervisor may.
    let resolve = |role: &str| {
        run(timpora(dir.path())
            .args(["alerts", "resolve", &id, "--as", "false-positive", "--json"])
            .env("TIMPORA_OPERATOR", "Supervisor B (synthetic)")
            .env("TIMPORA_ROLE", role)
            .args(ops))
    };
    let out = resolve("operator");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PermissionDenied") && stderr.contains("operator role may not resolve"),
        "{stderr}"
    );
    let out = resolve("supervisor");
    assert!(out.status.success());
    assert_eq!(lines(&out)[0]["resolution"], "RESOLUTION_FALSE_POSITIVE");
}

/// Poll `alerts list --json` as operations staff until `n` alerts are listed.

#[test]
fn up_runs_the_hub_keeps_its_data_and_leaves_no_nats_server_behind() {
    let dir = tempfile::tempdir().unwrap();
    let ports = hub_ports();
    let np = ports.1;
    let up = || up_quiet(dir.path(), ports);
    let stop = |mut hub: Killed| {
        interrupt(&mut hub, "the hub");
        assert!(
            TcpStream::connect(("127.0.0.1", np)).is_err(),
            "nats-server is still running after the hub stopped"
        );
    };

    let hub = up();
    // With nothing but the data directory: deferred at Kendari, then tried at Palu (R3).
    publish_deferred_then_another_office(dir.path());
    let before = wait_alerts(dir.path(), 1);
    stop(hub);

    // Again on the same data directory: the alert is still there.
    let hub = up();
    let after = wait_alerts(dir.path(), 1);
    assert_eq!(after, before);
    stop(hub);

    // The sealer ran with the key `up` wrote, which is kept: its verifier keys, one per log.
    let out = run(timpora(dir.path())
        .args(["sealer", "key"])
        .arg(dir.path().join("sealer.key")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = String::from_utf8_lossy(&out.stdout);
    let origins: Vec<&str> = keys.lines().filter_map(|l| l.split('+').next()).collect();
    assert_eq!(
        origins,
        [
            "timpora.dev/events",
            "timpora.dev/alerts",
            "timpora.dev/access"
        ]
    );
}

#[test]
fn demo_alone_acts_as_the_agencies_through_the_gateway_and_every_rule_fires() {
    let dir = tempfile::tempdir().unwrap();
    // The simulator stops after 80 acts. The Kanim that enters the R1 storyline's backlog (a
    // deferral from over 30 days ago) may have reported nothing else; by default the correlator
    // would then wait 36 h for the rest of that backlog before counting R4, which looks at every
    // agency's reports. Here it stops waiting after 10 s of silence (and 2 s of grace).
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        timpora_testkit::sandbox::quick_rules("2s").replacen("idle = \"36h\"", "idle = \"10s\"", 1),
    )
    .unwrap();
    let _hub = up_quiet_with(
        dir.path(),
        hub_ports(),
        &[("TIMPORA_CORRELATOR__RULES", rules.as_path())],
    );
    // 80 acts at 40 per second: one set of storylines and ordinary traffic around it, each act
    // through the gateway's agency service with that agency's certificate.
    let out =
        run(timpora(dir.path()).args(["demo", "--seed", "7", "--rate", "40", "--count", "80"]));
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("80 acts sent (0 already stored), 0 refused"),
        "{said}"
    );
    // Sources are the agencies' own units, never the simulator.
    let events = run(timpora(dir.path()).args([
        "subscribe",
        "--from-seq",
        "1",
        "--idle-exit",
        "2",
        "--identity",
        "audit/inspektorat",
    ]));
    let sources: std::collections::BTreeSet<String> = lines(&events)
        .iter()
        .filter_map(|e| e["event"]["source"].as_str().map(str::to_owned))
        .collect();
    assert!(sources.contains("imigrasi/kanim-kendari") || sources.contains("imigrasi/kanim-palu"));
    assert!(sources.iter().any(|s| s.starts_with("desa/")));
    assert!(sources.iter().all(|s| !s.contains("demo")), "{sources:?}");
    wait_every_rule(dir.path(), 60);
    // Why each was raised: a replay into a scratch engine with the rule set of its version
    // reproduces the same alert id, for one alert of every rule.
    let listed = run(timpora(dir.path()).args([
        "alerts",
        "list",
        "--json",
        "--limit",
        "1000",
        "--identity",
        "audit/inspektorat",
    ]));
    let mut seen = std::collections::BTreeSet::new();
    for record in lines(&listed) {
        let (Some(rule), Some(id)) = (
            record["alert"]["ruleId"].as_str(),
            record["alert"]["id"].as_str(),
        ) else {
            continue;
        };
        if !seen.insert(rule.to_owned()) {
            continue;
        }
        let out = run(timpora(dir.path()).args(["audit", "explain", id, "--json"]));
        let e: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(out.status.success(), "{rule}: {e}");
        assert_eq!(e["reproduced"], true, "{rule}: {e}");
        assert_eq!(e["rule_id"], rule);
        let contributions = e["contributions"].as_array().unwrap();
        // An absence rule's evidence is the event nothing answered; the others join two or more.
        let least = if e["rule"].as_str().unwrap().starts_with("absence") {
            1
        } else {
            2
        };
        assert!(contributions.len() >= least, "{rule}: {e}");
        // Each contributing event met its clause's conditions.
        for c in contributions {
            for k in c["conditions"].as_array().unwrap() {
                assert_eq!(k["met"], true, "{rule}: {c}");
            }
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    let out = run(timpora(dir.path()).args(["audit", "explain", "no-such-alert"]));
    assert!(!out.status.success());
    // A bad rate is a clear error.
    let bad = run(timpora(dir.path()).args(["demo", "--rate", "0"]));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--rate"));
}

/// One HTTP/1.0 POST of `body` to `path` on the console at `port` (HTTPS, trusting the
/// development CA of `dir`) with the console's header: the whole answer.
fn post_answer(dir: &Path, port: u16, path: &str, body: &str) -> String {
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         x-timpora-console: 1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    timpora_testkit::https::request(dir, port, &request).unwrap_or_default()
}

/// The status code of [`post_answer`].
fn post(dir: &Path, port: u16, path: &str, body: &str) -> u16 {
    post_answer(dir, port, path, body)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn console_logins_are_bounded_and_cannot_forge_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        run(timpora(dir.path()).args(["dev", "init"]))
            .status
            .success()
    );
    let port = free_port().unwrap();
    let log = dir.path().join("console.log");
    let mut console = Killed(
        timpora(dir.path())
            .args(["console", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_port(port, "the console");
    let d = dir.path().to_path_buf();
    let login = |user: &str, password: &str| {
        let body = serde_json::json!({ "username": user, "password": password }).to_string();
        post(&d, port, "/api/login", &body)
    };
    // Too long: refused before any hashing; a body past the limit is not even read.
    assert_eq!(login(&"u".repeat(65), "x"), 400);
    assert_eq!(login("operator", &"p".repeat(2000)), 400);
    // (20 KB rather than the 1.5 MB of the finding: a client still writing when the server has
    // answered and closed may lose the answer to the reset.)
    assert_eq!(login(&"u".repeat(20_000), "x"), 413);
    // A name that tries to forge a log line and clear the screen is logged escaped.
    assert_eq!(login("evil\nFAKE LINE\u{1b}[2J", "wrong"), 401);
    // Forty guesses at once for one account: no more than five are ever checked.
    let guesses: Vec<u16> = (0..40)
        .map(|i| {
            let d = d.clone();
            std::thread::spawn(move || login_guess(&d, port, i))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let checked = guesses.iter().filter(|&&c| c == 401).count();
    assert!(checked <= 5, "{checked} guesses checked: {guesses:?}");
    assert!(
        guesses.iter().all(|c| matches!(c, 401 | 429 | 503)),
        "{guesses:?}"
    );
    // More guesses one by one until refused: never more than five checked in all, and then
    // the right password is refused too while the lock holds.
    let mut checked_in_all = checked;
    loop {
        match login_guess(&d, port, 100) {
            401 => checked_in_all += 1,
            429 => break,
            other => assert_eq!(other, 503),
        }
        assert!(checked_in_all <= 5, "{checked_in_all} guesses checked");
    }
    let pw = timpora_client::dev::console_passwords(dir.path());
    let operator = &pw.iter().find(|(u, _)| u == "operator").unwrap().1;
    assert_eq!(login("operator", operator), 429);
    interrupt(&mut console, "the console");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.lines().any(|l| l.starts_with("FAKE LINE")), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(
        text.contains("evil\\\\nFAKE LINE") || text.contains("evil\\nFAKE LINE"),
        "{text}"
    );
}

fn login_guess(dir: &Path, port: u16, i: u32) -> u16 {
    let body =
        serde_json::json!({ "username": "operator", "password": format!("guess-{i}") }).to_string();
    post(dir, port, "/api/login", &body)
}

#[test]
fn the_console_serves_tls_with_the_development_ca_and_a_secure_cookie() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        run(timpora(dir.path()).args(["dev", "init"]))
            .status
            .success()
    );
    let port = free_port().unwrap();
    let mut console = Killed(
        timpora(dir.path())
            .args(["console", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(port, "the console");
    // Over TLS, trusting the development CA alone: the page, with HSTS.
    let page = timpora_testkit::https::request(
        dir.path(),
        port,
        "GET /login HTTP/1.0\r\nHost: localhost\r\n\r\n",
    )
    .unwrap();
    assert!(page.starts_with("HTTP/1.0 200"), "{page}");
    assert!(
        page.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{page}"
    );
    // Logging in sets a `__Host-` cookie that is `Secure`, and it opens the API.
    let pw = timpora_client::dev::console_passwords(dir.path());
    let operator = &pw.iter().find(|(u, _)| u == "operator").unwrap().1;
    let body = serde_json::json!({ "username": "operator", "password": operator }).to_string();
    let answer = post_answer(dir.path(), port, "/api/login", &body);
    let cookie = answer
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .unwrap_or_else(|| panic!("no cookie: {answer}"));
    assert!(cookie.starts_with("__Host-timpora_session="), "{cookie}");
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.split("; ").any(|a| a == attribute), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap();
    let me = timpora_testkit::https::request(
        dir.path(),
        port,
        &format!("GET /api/me HTTP/1.0\r\nHost: localhost\r\nCookie: {session}\r\n\r\n"),
    )
    .unwrap();
    assert!(
        me.starts_with("HTTP/1.0 200") && me.contains("\"operator\""),
        "{me}"
    );
    // Plain HTTP gets no page: the port speaks TLS only.
    use std::io::{Read, Write};
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    plain
        .write_all(b"GET /login HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    // A client that does not trust the development CA is refused at the handshake.
    let other = tempfile::tempdir().unwrap();
    assert!(
        run(timpora(other.path()).args(["dev", "init"]))
            .status
            .success()
    );
    let err = timpora_testkit::https::request(other.path(), port, "GET / HTTP/1.0\r\n\r\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate"), "{err}");
    // The command says where it serves.
    interrupt(&mut console, "the console");
    let mut said = String::new();
    console
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    assert!(
        said.contains(&format!("https://127.0.0.1:{port}")),
        "{said}"
    );
}

#[test]
fn a_benchmark_stops_on_ctrl_c_and_takes_its_nats_server_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut bench = Killed(
        timpora(dir.path())
            .args([
                "bench",
                "correlate",
                "--events",
                "20000",
                "--live-secs",
                "600",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let nats = nats_child(bench.0.id());
    // Well into the run (loading, measuring), Ctrl-C.
    std::thread::sleep(Duration::from_secs(3));
    signal(bench.0.id(), "-INT");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = bench.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "Ctrl-C did not stop the benchmark"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    let mut said = String::new();
    use std::io::Read as _;
    bench
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    assert!(said.contains("benchmark interrupted"), "{said}");
    // Its nats-server was stopped before the exit, not left to a parent-death signal.
    assert!(
        !std::path::Path::new(&format!("/proc/{nats}/cmdline")).exists()
            || std::fs::read_to_string(format!("/proc/{nats}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "nats-server {nats} still running"
    );
}

#[test]
fn bench_lateness_reports_what_waiting_for_late_reports_adds_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(timpora(dir.path()).args(["bench", "lateness", "--events", "6000", "--json"]));
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for rule in ["R1", "R4", "R5"] {
        let r = &v["rules"][rule];
        // As offices really report, the same alerts as if all reported live: none lost.
        assert_eq!(r["alerts"], r["alerts_live"], "{rule}: {v}");
        assert!(r["alerts"].as_u64().unwrap() > 0, "{rule}: {v}");
        // Never longer than a reporting unit's idle time (36 h) and a tick.
        assert!(
            r["delay_max_s"].as_u64().unwrap() <= 36 * 3_600 + 60,
            "{rule}: {v}"
        );
        assert_eq!(r["withdrawn_with_policy"], 0, "{rule}: {v}");
    }
    // R5 waits for Disnaker, which reports within seconds: only its batch's grace (30 s).
    let r5 = v["rules"]["R5"]["delay_p50_s"].as_u64().unwrap();
    assert!((30..=90).contains(&r5), "{v}");
    // R1 waits for BP3MI's nightly export: hours, not seconds.
    assert!(
        v["rules"]["R1"]["delay_p50_s"].as_u64().unwrap() > 3_600,
        "{v}"
    );
}

#[test]
fn an_auditor_verifies_the_logs_and_proves_a_record_offline() {
    let dir = tempfile::tempdir().unwrap();
    let every = [("TIMPORA_SEALER__EVERY", Path::new("200ms"))];
    let hub = up_quiet_with(dir.path(), hub_ports(), &every);
    publish_deferred_then_another_office(dir.path());
    wait_alerts(dir.path(), 1);
    // With the policy `up` wrote into the data directory, as an auditor would be handed it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let reports = loop {
        let out = run(timpora(dir.path()).args(["audit", "verify", "--json"]));
        let reports: Vec<Value> = lines(&out);
        if out.status.success() && reports[0]["checkpoint_size"].as_u64() >= Some(2) {
            break reports;
        }
        assert!(Instant::now() < deadline, "{reports:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let logs: Vec<&str> = reports.iter().map(|r| r["log"].as_str().unwrap()).collect();
    assert_eq!(logs, ["events", "alerts", "access"]);
    assert_eq!(reports[0]["cosigned_by"][0], "kejaksaan.dev-witness");
    let out = run(timpora(dir.path()).args(["audit", "verify", "--log", "events"]));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("events: intact, sequences 1-"), "{said}");

    // The events replayed as stored, and the same as CloudEvents, checked field by field.
    let out = run(timpora(dir.path()).args(["audit", "replay", "--stream", "events"]));
    assert!(out.status.success());
    let records = lines(&out);
    assert!(records.len() >= 2);
    let out = run(timpora(dir.path()).args(["audit", "replay", "--format", "cloudevents"]));
    assert!(out.status.success());
    let cloud = lines(&out);
    assert_eq!(cloud.len(), records.len());
    for (r, c) in records.iter().zip(&cloud) {
        let seq = r["sequence"].as_u64().unwrap();
        assert_eq!(c["specversion"], "1.0");
        assert_eq!(c["id"], seq.to_string());
        assert_eq!(c["source"], "/timpora/events");
        assert_eq!(c["subject"], r["subject"]);
        assert_eq!(c["time"], r["stored"]);
        assert_eq!(c["datacontenttype"], "application/protobuf");
        assert_eq!(c["data_base64"], r["payload"]);
        assert_eq!(c["timporastream"], "TIMPORA_EVENTS");
        assert_eq!(c["timporasequence"], seq);
        assert_eq!(c["type"], r["event"]["type"]);
        let headers: Vec<(String, String)> = r["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_owned(),
                    h[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let msg_id = headers.iter().find(|(n, _)| n == "Nats-Msg-Id").unwrap();
        assert_eq!(c["timporamsgid"], msg_id.1.as_str());
        let block: String = headers.iter().map(|(n, v)| format!("{n}: {v}\n")).collect();
        assert_eq!(c["timporaheaders"], block);
        assert!(r["stored"].as_str().unwrap().ends_with('Z'));
    }
    // A replay file is checked against the log, record by record; a changed record is named.
    let file = dir.path().join("events.ndjson");
    let out = run(timpora(dir.path()).args(["audit", "replay"]));
    std::fs::write(&file, &out.stdout).unwrap();
    let verify_file = |f: &Path| {
        run(timpora(dir.path())
            .args(["audit", "verify", "--log", "events", "--replay"])
            .arg(f))
    };
    let out = verify_file(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // With no network: the checkpoint as handed over, and the replay.
    let note = dir.path().join("events.checkpoint");
    let out = run(timpora(dir.path()).args(["audit", "checkpoint", "--log", "events"]));
    assert!(out.status.success());
    std::fs::write(&note, &out.stdout).unwrap();
    let out = run(timpora(dir.path())
        .args([
            "audit",
            "verify",
            "--log",
            "events",
            "--nats-url",
            "nats://127.0.0.1:1",
            "--replay",
        ])
        .arg(&file)
        .arg("--checkpoint")
        .arg(&note));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let cloud_file = dir.path().join("events.cloudevents");
    let out = run(timpora(dir.path()).args(["audit", "replay", "--format", "cloudevents"]));
    std::fs::write(&cloud_file, &out.stdout).unwrap();
    assert!(verify_file(&cloud_file).status.success());
    let text = std::fs::read_to_string(&file).unwrap();
    let mut first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    first["subject"] = "timpora.events.forged".into();
    let forged: String = std::iter::once(first.to_string())
        .chain(text.lines().skip(1).map(str::to_owned))
        .map(|l| l + "\n")
        .collect();
    std::fs::write(&file, forged).unwrap();
    let out = verify_file(&file);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("sequence 1: altered"));
    std::fs::write(&file, "{\"not\": \"a record\"}\n").unwrap();
    let out = verify_file(&file);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("events.ndjson:1:"));

    // A legal hold placed, listed, released (and kept on record).
    let out = run(timpora(dir.path()).args([
        "audit",
        "hold",
        "add",
        "psn_test",
        "--reason",
        "court order 12/2026",
    ]));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && said.contains("placed on psn_test"),
        "{said}"
    );
    let id = said.split_whitespace().next().unwrap().to_owned();
    let out = run(timpora(dir.path()).args(["audit", "hold", "release", &id]));
    assert!(out.status.success());
    let out = run(timpora(dir.path()).args(["audit", "hold", "list", "--json"]));
    let holds = lines(&out);
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0]["token"], "psn_test");
    assert!(holds[0]["released_at"].is_string());
    let out = run(timpora(dir.path()).args(["audit", "hold", "add", "psn_test", "--reason", " "]));
    assert!(!out.status.success());

    // Someone without audit rights is refused, and says so.
    let out =
        run(timpora(dir.path()).args(["audit", "replay", "--identity", "imigrasi/kanim-kendari"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PermissionDenied"));

    // Who read what: the refused replay, the auditor's replays and verifications.
    let out = run(timpora(dir.path()).args(["audit", "access", "--who", "imigrasi/kanim-kendari"]));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        said.lines()
            .any(|l| l.contains("imigrasi/kanim-kendari  replay  refused: PermissionDenied")),
        "{said}"
    );
    let out = run(timpora(dir.path()).args(["audit", "access", "--json"]));
    let records = lines(&out);
    let action = |a: &str| records.iter().filter(|r| r["action"] == a).count();
    assert!(
        action("replay") >= 4 && action("verify") >= 3,
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "replay" && r["closing"] == true)
    );

    // A proof of the first event, checked offline after the hub is gone.
    let file = dir.path().join("proof.json");
    let out = run(timpora(dir.path())
        .args(["audit", "prove", "1", "--out"])
        .arg(&file));
    assert!(out.status.success());
    let mut hub = hub;
    interrupt(&mut hub, "the hub");
    let out = run(timpora(dir.path())
        .args(["audit", "verify-proof"])
        .arg(&file));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.starts_with("valid: TIMPORA_EVENTS sequence 1 "),
        "{said}"
    );
    assert!(said.contains("cosigned by kejaksaan.dev-witness"), "{said}");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&file, bytes).unwrap();
    let out = run(timpora(dir.path())
        .args(["audit", "verify-proof"])
        .arg(&file));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("invalid: "));
}
