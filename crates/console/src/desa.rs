//! Villages' reports: a village account (role `village`, identity `desa/<village code>`) sends
//! what it saw through the gateway's `DesaService` as its own village, so validation,
//! pseudonymisation, authorisation, rate limits and the access records apply unchanged. The
//! console keeps nothing of a report: it builds the request, sends it and answers with the
//! gateway's acknowledgement, or with the gateway's own field errors.
//!
//! The village's page (`/desa/`) is made for a cheap phone on one bar of signal: small, embedded,
//! Indonesian first, with a service worker that keeps it openable offline and a queue on the
//! phone that sends what was written offline once the connection returns.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use timpora_proto::regions;
use timpora_proto::v1::desa_service_client::DesaServiceClient;
use timpora_proto::v1::{
    CommunityReport, CommunityReportKind, CountCommunityReportsRequest, EventMeta,
    ListCommunityReportsRequest, Person, Recruiter, ReporterRole, SubmitCommunityReportRequest,
};
use tonic_types::StatusExt;

use crate::api::{ApiError, App, account, from_script, signed_in};
use crate::auth::{Account, Role};
use crate::ui::{asset, forbidden, html};

const PAGE_HTML: &str = include_str!("assets/desa.html");
const PAGE_JS: &str = include_str!("assets/desa.js");
const PAGE_CSS: &str = include_str!("assets/desa.css");
const WORKER_JS: &str = include_str!("assets/desa-sw.js");
const MANIFEST: &str = include_str!("assets/desa.webmanifest");
const ICON: &str = include_str!("assets/desa-icon.svg");

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
    fn request(self, village: &str) -> Result<SubmitCommunityReportRequest, Vec<Violation>> {
        let time = match self.time.as_deref().map(str::trim) {
            None | Some("") => std::time::SystemTime::now().into(),
            Some(t) => t.parse::<prost_types::Timestamp>().map_err(|_| {
                vec![Violation {
                    field: "meta.time".to_owned(),
                    description: "not an RFC 3339 time".to_owned(),
                    indonesian: Some("waktu tidak valid".to_owned()),
                }]
            })?,
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

/// The villages' routes: the page and its files under `/desa/` (the service worker's scope), the
/// reports API, and the counts for operations.
pub(crate) fn routes(router: axum::Router<App>) -> axum::Router<App> {
    let router = FILES.iter().fold(router, |router, &(path, body, kind)| {
        router.route(path, get(move || async move { asset(body, kind) }))
    });
    router
        .route(
            "/desa",
            get(|| async { Redirect::to(Role::Village.home()) }),
        )
        .route("/desa/", get(page))
        .route("/api/desa/reports", get(receipts).post(submit))
        .route("/api/desa/villages", get(counts))
}

/// The page's files besides the page itself: path, content, type.
const FILES: [(&str, &str, &str); 5] = [
    ("/desa/app.js", PAGE_JS, "text/javascript"),
    ("/desa/app.css", PAGE_CSS, "text/css"),
    ("/desa/sw.js", WORKER_JS, "text/javascript"),
    (
        "/desa/manifest.webmanifest",
        MANIFEST,
        "application/manifest+json",
    ),
    ("/desa/icon.svg", ICON, "image/svg+xml"),
];

/// The page for a village account; an operations account is refused it, and a visitor is sent
/// to log in.
async fn page(State(app): State<App>, headers: HeaderMap) -> Response {
    match signed_in(&app, &headers) {
        Ok(a) if a.role == Role::Village => {
            let mut r = html(PAGE_HTML);
            // The page holds nothing of the account: the service worker may keep it.
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-cache"),
            );
            r
        }
        Ok(a) => forbidden(a, "village page"),
        Err(_) => Redirect::to("/login").into_response(),
    }
}

/// The signed-in village account and its village code, or 403.
fn village<'a>(app: &'a App, headers: &HeaderMap) -> Result<(&'a Account, &'a str), ApiError> {
    let a = signed_in(app, headers)?;
    a.identity
        .strip_prefix("desa/")
        .filter(|_| a.role == Role::Village)
        .map(|v| (a, v))
        .ok_or_else(|| {
            tracing::warn!(user = %a.username, "village api refused");
            ApiError(
                StatusCode::FORBIDDEN,
                "only a village account reports here".into(),
            )
        })
}

/// `GET /api/desa/reports`: the village's own reports of the last 30 days as the hub stored
/// them, newest first (the gateway reads them as the village, so only its own).
async fn receipts(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let (a, code) = village(&app, &headers)?;
    let mut client = DesaServiceClient::new(app.conn(&a.identity).await?);
    let receipts = client
        .list_community_reports(ListCommunityReportsRequest { page_size: 50 })
        .await?
        .into_inner()
        .receipts;
    let rows: Vec<Value> = receipts
        .into_iter()
        .map(|r| {
            json!({
                "id": r.event_id,
                "reference": r.sequence,
                "time": r.time.map(|t| t.to_string()),
                "received": r.received.map(|t| t.to_string()),
                "kind": short(r.kind().as_str_name(), "COMMUNITY_REPORT_KIND_"),
                "reporterRole": short(r.reporter_role().as_str_name(), "REPORTER_ROLE_"),
                "persons": r.persons,
                "recruiters": r.recruiters,
                "summary": r.summary,
            })
        })
        .collect();
    Ok(Json(json!({
        "village": code,
        "villageName": regions::local_name(code),
        "place": regions::describe(code),
        "reports": rows,
    })))
}

fn short<'a>(name: &'a str, prefix: &str) -> &'a str {
    name.strip_prefix(prefix).unwrap_or(name)
}

/// `GET /api/desa/villages`: for operations, how many reports each village sent in the last 30
/// days, with its name (counts only).
async fn counts(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let a = account(&app, &headers)?;
    let mut client = timpora_proto::v1::alert_service_client::AlertServiceClient::new(
        app.conn(&a.identity).await?,
    );
    let answer = client
        .count_community_reports(CountCommunityReportsRequest { days: 30 })
        .await?
        .into_inner();
    let rows: Vec<Value> = answer
        .villages
        .into_iter()
        .map(|v| {
            json!({
                "village": v.village_code,
                "name": regions::local_name(&v.village_code),
                "place": regions::describe(&v.village_code),
                "reports": v.reports,
                "lastReceived": v.last_received.map(|t| t.to_string()),
            })
        })
        .collect();
    Ok(Json(json!({
        "since": answer.since.map(|t| t.to_string()),
        "villages": rows,
    })))
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
    let (a, village) = village(&app, &headers)?;
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
            let fields: Vec<Violation> = status
                .get_details_bad_request()
                .map(|b| {
                    b.field_violations
                        .into_iter()
                        .map(|v| Violation {
                            field: v.field,
                            description: v.description,
                            indonesian: v.localized_message.map(|m| m.message),
                        })
                        .collect()
                })
                .unwrap_or_default();
            tracing::warn!(
                user = %a.username, code = ?status.code(),
                fields = ?fields.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(),
                "village report refused"
            );
            match fields.is_empty() {
                true => Err(status.into()),
                false => Ok(refused(fields)),
            }
        }
    }
}

/// What is wrong with one field, as the gateway says it, in English and (when it has the
/// wording) Indonesian.
struct Violation {
    field: String,
    description: String,
    indonesian: Option<String>,
}

/// 400 with each field and what is wrong with it.
fn refused(fields: Vec<Violation>) -> Response {
    let fields: Vec<_> = fields
        .into_iter()
        .map(|v| json!({ "field": v.field, "description": v.description, "id": v.indonesian }))
        .collect();
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": "the report has errors", "fields": fields })),
    )
        .into_response()
}
