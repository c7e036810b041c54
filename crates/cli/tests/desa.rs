//! Villages report through the console: a village account sends a report as its own village
//! through the gateway's `DesaService`; it is stored once however often the phone resends it,
//! pseudonymised, with the village as its source; the gateway's field errors come back by field,
//! in Indonesian too; the village reads its own receipts and no other village's; operations see
//! how many reports each village sent; a village account sees no operations page and an operator
//! cannot report for a village. Real processes: nats-server, `timpora gateway`,
//! `timpora console`. (The page itself, in a browser: `console.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::path::Path;

use serde_json::{Value, json};
use timpora_natsd::free_port;
use timpora_proto::v1::{Event, event};

mod common;
use common::{Logged, run, timpora, wait_port};

/// One HTTP/1.0 request to the console at `port` (HTTPS, trusting the development CA of `dir`)
/// as `session` (a `name=value` cookie): the status and the body.
fn call(
    dir: &Path,
    port: u16,
    method: &str,
    path: &str,
    session: &str,
    body: &str,
) -> (u16, String) {
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         x-timpora-console: 1\r\nCookie: {session}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = timpora_testkit::https::request(dir, port, &request).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {answer}"));
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

/// Log in as `user` (its development password): the session cookie.
fn login(dir: &Path, port: u16, user: &str) -> String {
    let passwords = timpora_client::dev::console_passwords(dir);
    let password = &passwords.iter().find(|(u, _)| u == user).unwrap().1;
    let body = json!({ "username": user, "password": password }).to_string();
    let request = format!(
        "POST /api/login HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         x-timpora-console: 1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = timpora_testkit::https::request(dir, port, &request).unwrap();
    answer
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .unwrap_or_else(|| panic!("no cookie for {user}: {answer}"))
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The villages' events stored on the bus of the hub in `dir`.
async fn stored(dir: &Path) -> Vec<(u64, Event)> {
    common::stored_events(dir, "timpora.events.desa.").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_village_reports_as_itself_once_and_sees_no_operations_page() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (gateway, nats, console) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let url = format!("nats://127.0.0.1:{nats}");
    let listen = format!("127.0.0.1:{gateway}");
    assert!(
        run(timpora(d).args(["dev", "init", "--listen", &listen, "--nats-url", &url]))
            .status
            .success()
    );
    let _nats = timpora_testkit::dev::nats_server(d, Some(nats)).unwrap();
    let _gateway = Logged::spawn(timpora(d).arg("gateway"), d, "gateway");
    let _console = Logged::spawn(
        timpora(d).args(["console", "--listen", &format!("127.0.0.1:{console}")]),
        d,
        "console",
    );
    wait_port(gateway, "the gateway");
    wait_port(console, "the console");

    let village = login(d, console, "desa-74.02.05.2001");
    let (status, me) = call(d, console, "GET", "/api/me", &village, "");
    assert_eq!(status, 200, "{me}");
    assert!(me.contains("\"village\""), "{me}");

    // A report as the phone sends it: an id made on the phone, what was seen, who.
    let report = json!({
        "id": "hp-3f9c2a-1",
        "kind": "RECRUITER_ACTIVITY",
        "reporterRole": "VILLAGE_HEAD",
        "persons": [{ "nik": "7402054107900001" }],
        "recruiters": [{ "phone": "+6281234567890", "name": "Pak Calo" }],
        "summary": "orang asing menawarkan kerja ke luar negeri",
    })
    .to_string();
    // The gateway may still be reading the stored ids: it says so, and a retry is answered.
    let mut sent = call(d, console, "POST", "/api/desa/reports", &village, &report);
    for _ in 0..100 {
        if sent.0 != 503 && sent.0 != 502 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        sent = call(d, console, "POST", "/api/desa/reports", &village, &report);
    }
    let (status, first) = sent;
    assert_eq!(status, 200, "{first}");
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["duplicate"], false, "{first}");
    let reference = first["reference"].as_u64().unwrap();
    assert!(reference > 0);
    // Sent again (the phone did not hear the answer): the same report, stored once.
    let (status, again) = call(d, console, "POST", "/api/desa/reports", &village, &report);
    assert_eq!(status, 200, "{again}");
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["reference"].as_u64(), Some(reference));

    // On the bus: once, from the village, about its own village, with no raw identifier.
    let events = stored(d).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (seq, ev) = &events[0];
    assert_eq!(*seq, reference);
    assert_eq!(ev.source, "desa/74.02.05.2001");
    assert_eq!(ev.region, "74.02.05.2001");
    let Some(event::Payload::CommunityReport(r)) = &ev.payload else {
        panic!("{ev:?}")
    };
    assert_eq!(r.village_code, "74.02.05.2001");
    assert!(r.persons[0].nik.is_empty() && r.persons[0].token.starts_with("psn_"));
    assert!(r.recruiters[0].phone.is_empty() && r.recruiters[0].token.starts_with("rec_"));
    let raw = format!("{ev:?}");
    for secret in ["7402054107900001", "6281234567890", "Pak Calo"] {
        assert!(!raw.contains(secret), "{secret} on the bus");
    }

    // The gateway's own field errors, by field; nothing stored.
    let bad = json!({
        "id": "hp-3f9c2a-2",
        "kind": "RECRUITER_ACTIVITY",
        "reporterRole": "VILLAGE_HEAD",
        "persons": [{ "nik": "12345" }],
    })
    .to_string();
    let (status, refused) = call(d, console, "POST", "/api/desa/reports", &village, &bad);
    assert_eq!(status, 400, "{refused}");
    let refused: Value = serde_json::from_str(&refused).unwrap();
    let fields: Vec<&str> = refused["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.iter().any(|f| f.contains("persons[0].nik")),
        "{refused}"
    );
    assert!(!refused.to_string().contains("12345"), "{refused}");
    // In Indonesian too, as the gateway words it.
    let nik = refused["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "report.persons[0].nik")
        .unwrap();
    assert_eq!(
        nik["id"], "NIK harus tepat 16 angka, seperti di KTP",
        "{refused}"
    );
    let unknown =
        json!({ "id": "hp-3", "kind": "GOSSIP", "reporterRole": "VILLAGE_HEAD" }).to_string();
    let (status, refused) = call(d, console, "POST", "/api/desa/reports", &village, &unknown);
    assert_eq!(status, 400, "{refused}");
    assert!(refused.contains("kind"), "{refused}");
    // The village is the account's: a report naming another is refused, not stored there.
    let elsewhere = json!({
        "id": "hp-5", "kind": "RECRUITER_ACTIVITY", "reporterRole": "VILLAGE_HEAD",
        "villageCode": "72.71.01.1007",
    })
    .to_string();
    let (status, refused) = call(
        d,
        console,
        "POST",
        "/api/desa/reports",
        &village,
        &elsewhere,
    );
    assert_eq!(status, 422, "{refused}");
    assert!(refused.contains("villageCode"), "{refused}");
    assert_eq!(stored(d).await.len(), 1, "a refused report changed the bus");

    // A resident the village knows by name only: stored, with the name a token.
    let named = json!({
        "id": "hp-3f9c2a-4",
        "kind": "RESIDENT_DEPARTED",
        "reporterRole": "PIMPASA",
        "persons": [{ "name": "Siti Aminah" }],
    })
    .to_string();
    let (status, body) = call(d, console, "POST", "/api/desa/reports", &village, &named);
    assert_eq!(status, 200, "{body}");
    let events = stored(d).await;
    assert_eq!(events.len(), 2);
    let Some(event::Payload::CommunityReport(r)) = &events[1].1.payload else {
        panic!("{events:?}")
    };
    assert!(r.persons[0].name.is_empty() && r.persons[0].token.starts_with("psn_"));
    assert!(!format!("{:?}", events[1].1).contains("Siti"));

    // The village's receipts: its own reports, newest first, as the hub stored them.
    let (status, mine) = call(d, console, "GET", "/api/desa/reports", &village, "");
    assert_eq!(status, 200, "{mine}");
    let mine: Value = serde_json::from_str(&mine).unwrap();
    assert_eq!(mine["village"], "74.02.05.2001");
    let receipts = mine["reports"].as_array().unwrap();
    let ids: Vec<&str> = receipts.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["hp-3f9c2a-4", "hp-3f9c2a-1"], "{mine}");
    assert_eq!(receipts[1]["reference"].as_u64(), Some(reference));
    assert_eq!(receipts[1]["kind"], "RECRUITER_ACTIVITY");
    assert_eq!(receipts[1]["persons"], 1);
    assert!(receipts[1]["received"].as_str().is_some(), "{mine}");
    for secret in [
        "7402054107900001",
        "6281234567890",
        "Pak Calo",
        "psn_",
        "rec_",
    ] {
        assert!(
            !mine.to_string().contains(secret),
            "{secret} in the receipts"
        );
    }
    // Another village reads its own, which are none of these.
    let other = login(d, console, "desa-74.02.01.2007");
    let (status, theirs) = call(d, console, "GET", "/api/desa/reports", &other, "");
    assert_eq!(status, 200, "{theirs}");
    let theirs: Value = serde_json::from_str(&theirs).unwrap();
    assert_eq!(theirs["village"], "74.02.01.2007");
    assert_eq!(theirs["reports"], json!([]), "{theirs}");
    // The same id from another village is that village's own report, not a duplicate.
    let (status, body) = call(d, console, "POST", "/api/desa/reports", &other, &report);
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["duplicate"], false);
    assert_eq!(stored(d).await[2].1.source, "desa/74.02.01.2007");

    // A village sees no operations page or API; its start page is its own.
    for path in [
        "/api/alerts",
        "/api/overview",
        "/api/audit/access",
        "/api/desa/villages",
    ] {
        let (status, body) = call(d, console, "GET", path, &village, "");
        assert_eq!(status, 403, "{path}: {body}");
    }
    for path in ["/overview", "/audit", "/alerts/alr_x"] {
        let (status, _) = call(d, console, "GET", path, &village, "");
        assert_eq!(status, 403, "{path}");
    }
    let (status, _) = call(d, console, "GET", "/", &village, "");
    assert_eq!(status, 303);
    let (status, page) = call(d, console, "GET", "/desa/", &village, "");
    assert_eq!(status, 200);
    assert!(page.contains("/desa/app.js"), "{page}");
    // And an operator does not report for a village, nor open its page; it sees the counts.
    let operator = login(d, console, "operator");
    let (status, body) = call(d, console, "POST", "/api/desa/reports", &operator, &report);
    assert_eq!(status, 403, "{body}");
    for path in ["/api/desa/reports", "/desa/"] {
        let (status, body) = call(d, console, "GET", path, &operator, "");
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, _) = call(d, console, "GET", "/api/alerts", &operator, "");
    assert_eq!(status, 200);
    let (status, counts) = call(d, console, "GET", "/api/desa/villages", &operator, "");
    assert_eq!(status, 200, "{counts}");
    let counts: Value = serde_json::from_str(&counts).unwrap();
    let by_village: Vec<(&str, u64)> = counts["villages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["village"].as_str().unwrap(),
                v["reports"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_village,
        [("74.02.01.2007", 1), ("74.02.05.2001", 2)],
        "{counts}"
    );
    assert_eq!(counts["villages"][0]["name"], "Asaki", "{counts}");
    assert_eq!(counts["villages"][1]["place"], "Konawe, Sulawesi Tenggara");
    assert!(!counts.to_string().contains("hp-3f9c2a"), "{counts}");
}
