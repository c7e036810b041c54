//! Raw identifiers appear nowhere: the stream's stored bytes and everything the hub logged
//! (at the most verbose level) are searched for the NIK, passport number, phone and name sent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::io::Write;
use std::sync::{Arc, Mutex};

use timpora_e2e::Hub;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::imigrasi_service_client::ImigrasiServiceClient;
use timpora_e2e::v1::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn raw_identifiers_are_not_on_the_bus_nor_in_the_logs() {
    let logs = Capture::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .init();

    let hub = Hub::start().await.unwrap();
    let mut c = ImigrasiServiceClient::new(hub.as_agency("imigrasi/kanim-kendari").await.unwrap());
    let nik = nik(4242);
    let passport = passport(4242);
    let phone = phone(4242);
    let name = "Wa Ode Sintetis";
    let mut i = interview(4242);
    i.applicant = Some(Person {
        nik: nik.clone(),
        passport_number: passport.clone(),
        name: name.into(),
        ..Default::default()
    });
    i.recruiters = vec![Recruiter {
        phone: phone.clone(),
        ..Default::default()
    }];
    c.record_passport_interview(RecordPassportInterviewRequest {
        meta: Some(meta("privacy-1")),
        interview: Some(i.clone()),
    })
    .await
    .unwrap();
    // A rejected request carrying the same identifiers must not leak them either.
    let mut bad = i;
    bad.outcome = 0;
    c.record_passport_interview(RecordPassportInterviewRequest {
        meta: Some(meta("privacy-2")),
        interview: Some(bad),
    })
    .await
    .unwrap_err();

    let stored = hub.stored_bytes().await.unwrap();
    let logged = logs.0.lock().unwrap().clone();
    let logged = String::from_utf8_lossy(&logged);
    assert!(!stored.is_empty());
    assert!(
        logged.contains("privacy-1"),
        "the capture works: the event id is logged"
    );
    assert!(logged.contains("event rejected"), "the rejection is logged");
    for secret in [nik.as_str(), passport.as_str(), phone.as_str(), name] {
        assert!(
            !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} found in the stream"
        );
        assert!(!logged.contains(secret), "{secret} found in the logs");
    }
}
