//! Villages' reports: a village account (role `village`, identity `desa/<village code>`) sends
//! what it saw through the gateway's `DesaService` as its own village, so validation,
//! pseudonymisation, authorisation, rate limits and the access records apply unchanged. The
//! console keeps nothing of a report: it builds the request, sends it and answers with the
//! gateway's acknowledgement, or with the gateway's own field errors.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use timpora_proto::v1::desa_service_client::DesaServiceClient;
use timpora_proto::v1::{
    CommunityReport, CommunityReportKind, EventMeta, Person, Recruiter, ReporterRole,
    SubmitCommunityReportRequest,
};
use tonic_types::StatusExt;

use crate::api::{ApiError, App, from_script, signed_in};
use crate::auth::Role;

/// A report as the page sends it. Raw identifiers pass through to the gateway in this request
/// and are not kept, logged or echoed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReportForm {
    /// Made on the phone when the report was written: a resend of it is the same report.
    id: String,
    /// When it was seen (RFC 3339); now when absent.
    #[serde(default)]
    time: Option<String>,
    /// `RECRUITER_ACTIVITY`, `RESIDENT_PLANNING_DEPARTURE`, `RESIDENT_DEPARTED`,
    /// `RESIDENT_MISSING_ABROAD`, `DOCUMENT_FORGERY_SUSPECTED`.
    kind: String,
    /// `VILLAGE_HEAD`, `PIMPASA`, `BHABINKAMTIBMAS`, `OTHER`.
    reporter_role: String,
    #[serde(default)]
    persons: Vec<PersonForm>,
    #[serde(default)]
    recruiters: Vec<RecruiterForm>,
    #[serde(default)]
    summary: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonForm {
    #[serde(default)]
    nik: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecruiterForm {
    #[serde(default)]
    phone: String,
    #[serde(default)]
    name: String,
}

/// An enum value by its name without the type's prefix (`VILLAGE_HEAD`); an unknown name is
/// the unspecified value, which the gateway refuses with the field named.
fn named<E: Default>(prefix: &str, name: &str, from: fn(&str) -> Option<E>) -> E {
    from(&format!("{prefix}{}", name.trim().to_ascii_uppercase())).unwrap_or_default()
}

impl ReportForm {
    /// The gateway's request for `village` (the account's village code), or what is wrong
    /// with the form by field.
    fn request(self, village: &str) -> Result<SubmitCommunityReportRequest, Vec<(String, String)>> {
        let time = match self.time.as_deref().map(str::trim) {
            None | Some("") => std::time::SystemTime::now().into(),
            Some(t) => t
                .parse::<prost_types::Timestamp>()
                .map_err(|_| vec![("meta.time".to_owned(), "not an RFC 3339 time".to_owned())])?,
        };
        let kind: CommunityReportKind = named(
            "COMMUNITY_REPORT_KIND_",
            &self.kind,
            CommunityReportKind::from_str_name,
        );
        let role: ReporterRole = named(
            "REPORTER_ROLE_",
            &self.reporter_role,
            ReporterRole::from_str_name,
        );
        Ok(SubmitCommunityReportRequest {
            meta: Some(EventMeta {
                id: self.id,
                time: Some(time),
                region: village.to_owned(),
                ..Default::default()
            }),
            report: Some(CommunityReport {
                village_code: village.to_owned(),
                reporter_role: role as i32,
                kind: kind as i32,
                persons: self
                    .persons
                    .into_iter()
                    .map(|p| Person {
                        nik: p.nik.trim().to_owned(),
                        name: p.name.trim().to_owned(),
                        ..Default::default()
                    })
                    .collect(),
                recruiters: self
                    .recruiters
                    .into_iter()
                    .map(|r| Recruiter {
                        phone: r.phone.trim().to_owned(),
                        name: r.name.trim().to_owned(),
                        village_code: village.to_owned(),
                        ..Default::default()
                    })
                    .collect(),
                summary: self.summary.trim().to_owned(),
            }),
        })
    }
}

/// The villages' routes.
pub(crate) fn routes(router: axum::Router<App>) -> axum::Router<App> {
    router.route("/api/desa/reports", axum::routing::post(submit))
}

/// `POST /api/desa/reports`: send a village's report; its acknowledgement (`reference` is the
/// stream sequence the hub stored it at, `duplicate` when it was stored before), or the
/// gateway's field errors (400, `fields`).
async fn submit(
    State(app): State<App>,
    headers: HeaderMap,
    Json(form): Json<ReportForm>,
) -> Result<Response, ApiError> {
    from_script(&headers)?;
    let a = signed_in(&app, &headers)?;
    let Some(village) = a
        .identity
        .strip_prefix("desa/")
        .filter(|_| a.role == Role::Village)
    else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "only a village account reports here".into(),
        ));
    };
    let request = match form.request(village) {
        Ok(request) => request,
        Err(fields) => return Ok(refused(fields)),
    };
    let mut client = DesaServiceClient::new(app.conn(&a.identity).await?);
    match client.submit_community_report(request).await {
        Ok(answer) => {
            let ack = answer.into_inner().ack.unwrap_or_default();
            tracing::info!(
                user = %a.username, sequence = ack.sequence, duplicate = ack.duplicate,
                "village report sent"
            );
            Ok(Json(json!({
                "id": ack.event_id,
                "reference": ack.sequence,
                "duplicate": ack.duplicate,
            }))
            .into_response())
        }
        Err(status) => {
            let fields: Vec<(String, String)> = status
                .get_details_bad_request()
                .map(|b| {
                    b.field_violations
                        .into_iter()
                        .map(|v| (v.field, v.description))
                        .collect()
                })
                .unwrap_or_default();
            tracing::warn!(
                user = %a.username, code = ?status.code(),
                fields = ?fields.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
                "village report refused"
            );
            match fields.is_empty() {
                true => Err(status.into()),
                false => Ok(refused(fields)),
            }
        }
    }
}

/// 400 with each field and what is wrong with it, as the gateway says it.
fn refused(fields: Vec<(String, String)>) -> Response {
    let fields: Vec<_> = fields
        .into_iter()
        .map(|(field, description)| json!({ "field": field, "description": description }))
        .collect();
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": "the report has errors", "fields": fields })),
    )
        .into_response()
}
