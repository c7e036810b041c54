//! Licence numbers as offices write them (issue 11): with slashes, dots, spaces or dashes, in
//! any case; stored one way, so the same licence from Disnaker and from BP3MI meets in R5.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::time::Duration;

use timpora_e2e::Hub;
use timpora_e2e::fixtures::*;
use timpora_e2e::v1::*;
use tonic::Code;

use bp3mi_service_client::Bp3miServiceClient;
use disnaker_service_client::DisnakerServiceClient;

#[tokio::test]
async fn licence_numbers_with_slashes_from_two_agencies_meet_in_r5() {
    let hub = Hub::start().await.unwrap();
    let _correlator = hub.correlate();
    let mut disnaker =
        DisnakerServiceClient::new(hub.as_agency("disnaker/disnaker-konawe").await.unwrap());
    let mut bp3mi = Bp3miServiceClient::new(hub.as_agency("bp3mi/bp3mi-sultra").await.unwrap());

    // Disnaker revokes the licence as the register writes it.
    disnaker
        .update_company_licence(UpdateCompanyLicenceRequest {
            meta: Some(meta("lic-slash-1")),
            licence: Some(CompanyLicence {
                p3mi_licence: "KEP.45/PPTKIS/VI/2023".into(),
                status: LicenceStatus::Revoked as i32,
                company_name: "PT Contoh Penempatan".into(),
            }),
        })
        .await
        .unwrap();
    // What is not a licence number is refused, naming the field.
    let bad = disnaker
        .update_company_licence(UpdateCompanyLicenceRequest {
            meta: Some(meta("lic-bad-1")),
            licence: Some(CompanyLicence {
                p3mi_licence: "KEP#45<script>".into(),
                status: LicenceStatus::Revoked as i32,
                company_name: "PT Contoh".into(),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("p3mi_licence"), "{bad:?}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    // BP3MI registers a worker with the same licence, written its own way.
    bp3mi
        .update_cpmi_status(UpdateCpmiStatusRequest {
            meta: Some(meta("cpmi-slash-1")),
            status: Some(CpmiStatus {
                person: Some(person(31)),
                worker_id: "CPMI-7402-0031".into(),
                p3mi_licence: " kep 45 / pptkis / vi / 2023 ".into(),
                destination_country: "MY".into(),
                job: "plantation".into(),
                stage: CpmiStage::Registered as i32,
            }),
        })
        .await
        .unwrap();

    // Both are stored in the one form.
    let stored = hub.stored().await.unwrap();
    let licences: Vec<&str> = stored
        .iter()
        .filter_map(|(_, e)| match &e.payload {
            Some(event::Payload::CompanyLicence(x)) => Some(x.p3mi_licence.as_str()),
            Some(event::Payload::CpmiStatus(x)) => Some(x.p3mi_licence.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(licences, ["KEP-45-PPTKIS-VI-2023"; 2]);

    // And R5 finds the registration under the revoked licence.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let r5 = loop {
        let alerts = hub.alerts().await.unwrap();
        if let Some(a) = alerts.into_iter().find(|a| a.rule_id == "R5") {
            break a;
        }
        assert!(tokio::time::Instant::now() < deadline, "no R5 alert");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(r5.group_key, "KEP-45-PPTKIS-VI-2023");
    assert_eq!(r5.evidence.len(), 2, "{r5:?}");
}
