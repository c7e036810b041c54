//! The console's JSON API and live stream: login and sessions, alerts read and acted on through
//! the gateway as the account's identity, the region overview and the access records.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use timpora_client::actions::{self, Step};
use timpora_client::{Conn, Keyring, Target};
use timpora_proto::regions;
use timpora_proto::v1::alert_service_client::AlertServiceClient;
use timpora_proto::v1::audit_service_client::AuditServiceClient;
use timpora_proto::v1::*;

use crate::auth::{self, Account, Sessions};
use crate::metrics::Outcome;
use crate::tls::Peer;

/// The session cookie's name over plain HTTP; over TLS it is `__Host-` prefixed, which browsers
/// accept only with `Secure`, `Path=/` and no `Domain`.
const COOKIE: &str = "timpora_session";
const SECURE_COOKIE: &str = "__Host-timpora_session";

pub(crate) struct Shared {
    /// Password hashes allowed at once.
    pub(crate) hashers: Arc<tokio::sync::Semaphore>,
    pub(crate) accounts: Vec<Account>,
    pub(crate) units: Vec<String>,
    pub(crate) sessions: Sessions,
    pub(crate) gateway: Target,
    pub(crate) keyring: Keyring,
    pub(crate) conns: Mutex<HashMap<String, Conn>>,
    /// Becomes true at shutdown: live streams end so the server can drain.
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
    /// Served over TLS: the session cookie is `Secure`.
    pub(crate) secure: bool,
    pub(crate) metrics: crate::metrics::Metrics,
}

pub(crate) type App = Arc<Shared>;

impl Shared {
    fn cookie_name(&self) -> &'static str {
        if self.secure { SECURE_COOKIE } else { COOKIE }
    }

    /// The `Set-Cookie` value carrying `token` (empty and expired to end a session).
    fn cookie(&self, token: &str) -> String {
        let name = self.cookie_name();
        let secure = if self.secure { "; Secure" } else { "" };
        let expired = if token.is_empty() { "; Max-Age=0" } else { "" };
        format!("{name}={token}; Path=/; HttpOnly; SameSite=Strict{secure}{expired}")
    }

    async fn alerts(&self, identity: &str) -> Result<AlertServiceClient<Conn>, ApiError> {
        Ok(AlertServiceClient::new(self.conn(identity).await?))
    }

    async fn audit(&self, identity: &str) -> Result<AuditServiceClient<Conn>, ApiError> {
        Ok(AuditServiceClient::new(self.conn(identity).await?).max_decoding_message_size(8 << 20))
    }

    /// The gateway connection of `identity`, made once.
    pub(crate) async fn conn(&self, identity: &str) -> Result<Conn, ApiError> {
        let mut conns = self.conns.lock().await;
        let conn = match conns.get(identity) {
            Some(c) => c.clone(),
            None => {
                let unavailable = |e: timpora_client::Error| {
                    tracing::error!(identity, error = %e, "console cannot reach the gateway");
                    ApiError(StatusCode::BAD_GATEWAY, "gateway unavailable".into())
                };
                let credentials = self.keyring.credentials(identity).map_err(unavailable)?;
                let c = timpora_client::connect(&self.gateway, &credentials)
                    .await
                    .map_err(unavailable)?;
                conns.insert(identity.to_owned(), c.clone());
                c
            }
        };
        Ok(conn)
    }
}

/// The API's routes.
pub(crate) fn routes(router: Router<App>) -> Router<App> {
    router
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/alerts", get(list))
        .route("/api/alerts/{id}", get(show))
        .route("/api/alerts/{id}/{action}", post(act))
        .route("/api/subjects/{subject}", get(subject))
        .route("/api/stream", get(stream))
        .route("/api/overview", get(overview))
        .route("/api/audit/access", get(access))
        .route("/api/audit/logs", get(logs))
        .route("/api/audit/replay", get(replay))
        .route("/api/audit/explain/{id}", get(explain))
}

/// An API failure: a status and a message for the page.
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code::*;
        let code = match s.code() {
            InvalidArgument => StatusCode::BAD_REQUEST,
            NotFound => StatusCode::NOT_FOUND,
            PermissionDenied | Unauthenticated => StatusCode::FORBIDDEN,
            FailedPrecondition | Aborted | AlreadyExists => StatusCode::CONFLICT,
            Unavailable | DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError(code, s.message().to_owned())
    }
}

fn session_token<'a>(app: &App, headers: &'a HeaderMap) -> Option<&'a str> {
    let name = app.cookie_name();
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The logged-in account, whatever its role, or 401.
pub(crate) fn signed_in<'a>(app: &'a App, headers: &HeaderMap) -> Result<&'a Account, ApiError> {
    session_token(app, headers)
        .and_then(|t| app.sessions.account(t))
        .and_then(|i| app.accounts.get(i))
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "not logged in".into()))
}

/// The logged-in account of the operations pages, or 401; a village account gets 403.
pub(crate) fn account<'a>(app: &'a App, headers: &HeaderMap) -> Result<&'a Account, ApiError> {
    let a = signed_in(app, headers)?;
    if a.role == crate::auth::Role::Village {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "a village account reports for its village and sees no operations page".into(),
        ));
    }
    Ok(a)
}

/// Changes must come from the console's own scripts (a custom header no form can send).
pub(crate) fn from_script(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.get("x-timpora-console").is_some() {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::FORBIDDEN,
            "missing x-timpora-console header".into(),
        ))
    }
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(
    State(app): State<App>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    Json(f): Json<LoginForm>,
) -> Result<Response, ApiError> {
    from_script(&headers)?;
    // Bounded before any work: no long names hashed, kept or logged.
    if f.username.chars().count() > auth::MAX_USERNAME_CHARS
        || f.password.len() > auth::MAX_PASSWORD_BYTES
    {
        tracing::warn!(
            username_chars = f.username.chars().count(),
            password_bytes = f.password.len(),
            "console login refused: too long"
        );
        app.metrics.login(Outcome::TooLong);
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "username at most {} characters, password at most {} bytes",
                auth::MAX_USERNAME_CHARS,
                auth::MAX_PASSWORD_BYTES
            ),
        ));
    }
    // At most as many hashes at once as there are permits: a caller past that is refused at
    // once rather than queued (each hash takes ~19 MiB and tens of milliseconds).
    let Ok(permit) = app.hashers.clone().try_acquire_owned() else {
        app.metrics.login(Outcome::Busy);
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy; try again in a moment".into(),
        ));
    };
    // Counted before the password is checked, so parallel guesses cannot outrun the lock.
    if let Err(refusal) = app.sessions.attempt(&f.username, peer.ip()) {
        tracing::warn!(user = ?f.username, address = %peer.ip(), ?refusal, "console login refused");
        app.metrics.login(Outcome::Locked);
        return Err(ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed logins; wait a minute".into(),
        ));
    }
    let found = app.accounts.iter().position(|a| a.username == f.username);
    // An unknown username costs the same hashing as a known one, so timing tells nothing.
    let hash = found.map_or_else(
        || auth::DECOY_HASH.clone(),
        |i| app.accounts[i].password_hash.clone(),
    );
    let password = f.password.clone();
    // Hashing is slow on purpose: off the async threads.
    let verified = tokio::task::spawn_blocking(move || {
        let ok = auth::verify_password(&password, &hash);
        drop(permit);
        ok
    })
    .await
    .unwrap_or(false);
    let ok = found.is_some() && verified;
    let Some(i) = found.filter(|_| ok) else {
        // Debug formatting: a name with line breaks or escapes cannot forge a log line.
        tracing::warn!(user = ?f.username, "console login failed");
        app.metrics.login(Outcome::Failed);
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "wrong username or password".into(),
        ));
    };
    app.sessions.succeeded(&f.username);
    let token = app
        .sessions
        .open(i)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    tracing::info!(user = %f.username, "console login");
    app.metrics.login(Outcome::Ok);
    app.metrics.sessions.set(app.sessions.live() as i64);
    let cookie = app.cookie(&token);
    let home = app.accounts[i].role.home();
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({ "ok": true, "home": home })),
    )
        .into_response())
}

async fn logout(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(t) = session_token(&app, &headers) {
        app.sessions.close(t);
        app.metrics.sessions.set(app.sessions.live() as i64);
    }
    let cookie = app.cookie("");
    ([(header::SET_COOKIE, cookie)], Json(json!({ "ok": true }))).into_response()
}

async fn me(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let a = signed_in(&app, &headers)?;
    Ok(Json(json!({
        "username": a.username,
        "displayName": a.display_name,
        "role": a.role,
        "identity": a.identity,
        "mayAct": a.role.may_act(),
        "mayResolve": a.role.may_resolve(),
        "mayAudit": a.role.may_audit(),
        "units": app.units,
    })))
}

fn proto_json<M: prost::Message>(name: &str, m: &M) -> Result<Value, ApiError> {
    timpora_client::json::to_value(name, m)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// An alert record as the page reads it: proto3 JSON, with place names added.
fn record_view(r: &AlertRecord) -> Result<Value, ApiError> {
    let mut v = proto_json("timpora.v1.AlertRecord", r)?;
    let region = r.alert.as_ref().map_or("", |a| a.region.as_str());
    let regency = regions::regency_of(region);
    if let Some(o) = v.as_object_mut() {
        o.insert("regionName".into(), json!(regions::describe_full(region)));
        o.insert("regency".into(), json!(regency));
        o.insert("regencyName".into(), json!(regions::describe(regency)));
        o.insert(
            "province".into(),
            json!(region.split('.').next().unwrap_or("")),
        );
    }
    Ok(v)
}

fn event_view(e: &Event) -> Result<Value, ApiError> {
    let mut v = proto_json("timpora.v1.Event", e)?;
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "regionName".into(),
            json!(regions::describe_full(&e.region)),
        );
        o.insert(
            "agency".into(),
            json!(e.source.split('/').next().unwrap_or("")),
        );
    }
    Ok(v)
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: bool,
}

async fn list(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let a = account(&app, &headers)?;
    let filter = if q.all {
        AlertFilter::default()
    } else {
        actions::unresolved()
    };
    let records = app
        .alerts(&a.identity)
        .await?
        .list_alerts(ListAlertsRequest {
            filter: Some(filter),
            limit: 1000,
        })
        .await?
        .into_inner()
        .records;
    let views = records
        .iter()
        .map(record_view)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(Value::Array(views)))
}

async fn show(
    State(app): State<App>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let a = account(&app, &headers)?;
    let got = app
        .alerts(&a.identity)
        .await?
        .get_alert(GetAlertRequest {
            alert_id: id,
            operator: a.username.clone(),
        })
        .await?
        .into_inner();
    let record = got
        .record
        .as_ref()
        .map(record_view)
        .transpose()?
        .unwrap_or(Value::Null);
    let events = got
        .events
        .iter()
        .map(event_view)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(
        json!({ "record": record, "events": events, "withheld": got.withheld }),
    ))
}

/// A subject's page: its alerts and the events that mention it, as the account may read them
/// (the read is recorded by the gateway with the account's name).
async fn subject(
    State(app): State<App>,
    headers: HeaderMap,
    UrlPath(subject): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let a = account(&app, &headers)?;
    let got = app
        .alerts(&a.identity)
        .await?
        .get_subject(GetSubjectRequest {
            subject,
            operator: a.username.clone(),
        })
        .await?
        .into_inner();
    let alerts = got
        .alerts
        .iter()
        .map(record_view)
        .collect::<Result<Vec<_>, _>>()?;
    let events = got
        .events
        .iter()
        .map(event_view)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({
        "subject": got.subject,
        "alerts": alerts,
        "events": events,
        "withheld": got.withheld,
        "truncated": got.truncated,
    })))
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ActBody {
    note: String,
    assignee: String,
    resolution: String,
    case_kind: String,
    expected_version: u64,
}

async fn act(
    State(app): State<App>,
    headers: HeaderMap,
    UrlPath((id, action)): UrlPath<(String, String)>,
    Json(b): Json<ActBody>,
) -> Result<Json<Value>, ApiError> {
    from_script(&headers)?;
    let a = account(&app, &headers)?;
    let denied = |what: &str| {
        ApiError(
            StatusCode::FORBIDDEN,
            format!("the {:?} role may not {what}", a.role),
        )
    };
    if !a.role.may_act() {
        return Err(denied(&action));
    }
    let argument = match action.as_str() {
        "assign" => b.assignee.as_str(),
        "escalate" => b.case_kind.as_str(),
        "resolve" => b.resolution.as_str(),
        _ => "",
    };
    let step = Step::parse(&action, argument).map_err(|e| {
        let code = if e.starts_with("no action") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError(code, e)
    })?;
    if matches!(step, Step::Resolve(_)) && !a.role.may_resolve() {
        return Err(denied("resolve"));
    }
    let act = AlertAction {
        alert_id: id,
        expected_version: b.expected_version,
        note: b.note,
        operator: a.username.clone(),
        role: a.role.name().to_owned(),
    };
    let mut c = app.alerts(&a.identity).await?;
    let record = step.apply(&mut c, act).await?;
    tracing::info!(user = %a.username, action, "console action");
    Ok(Json(record_view(&record)?))
}

async fn stream(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let a = account(&app, &headers)?;
    let token = session_token(&app, &headers).unwrap_or_default().to_owned();
    let watch = app
        .alerts(&a.identity)
        .await?
        .watch_alerts(WatchAlertsRequest::default())
        .await?
        .into_inner();
    let events = watch.filter_map(|m| async move {
        let m = m.ok()?;
        // Only changes: the page loads the current list itself.
        if !m.live {
            return None;
        }
        let view = record_view(m.record.as_ref()?).ok()?;
        Some(Ok(SseEvent::default()
            .event("alert")
            .data(view.to_string())))
    });
    let ready = futures::stream::once(async { Ok(SseEvent::default().event("ready").data("{}")) });
    let mut stopping = app.stopping.clone();
    // An open page counts as use, up to the session's maximum age; at logout, at the maximum
    // age or at shutdown the stream ends (and the page finds itself logged out).
    let sessions = app.clone();
    let until = async move {
        let ended = async {
            loop {
                tokio::time::sleep(Duration::from_secs(15)).await;
                if sessions.sessions.account(&token).is_none() {
                    break;
                }
            }
        };
        tokio::select! {
            _ = stopping.wait_for(|s| *s) => {}
            () = ended => {}
        }
    };
    Ok(Sse::new(ready.chain(events).take_until(until)).keep_alive(KeepAlive::default()))
}

async fn overview(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let a = account(&app, &headers)?;
    let records = app
        .alerts(&a.identity)
        .await?
        .list_alerts(ListAlertsRequest {
            filter: Some(actions::unresolved()),
            limit: 1000,
        })
        .await?
        .into_inner()
        .records;
    // Every regency of the pilot, with zero where nothing is open.
    let mut counts: BTreeMap<String, [u32; 5]> = regions::AREAS
        .iter()
        .filter(|(c, _)| c.len() == 5)
        .map(|(c, _)| ((*c).to_owned(), [0; 5]))
        .collect();
    for r in &records {
        let Some(alert) = &r.alert else { continue };
        let regency = regions::regency_of(&alert.region).to_owned();
        let c = counts.entry(regency).or_default();
        c[0] += 1;
        let sev = usize::try_from(alert.severity).unwrap_or(0).min(4);
        if sev > 0 {
            c[sev] += 1;
        }
    }
    let rows: Vec<Value> = counts
        .into_iter()
        .map(|(code, c)| {
            json!({
                "regency": code,
                "name": regions::describe(&code),
                "open": c[0],
                "low": c[1], "medium": c[2], "high": c[3], "critical": c[4],
            })
        })
        .collect();
    Ok(Json(Value::Array(rows)))
}

#[derive(Deserialize)]
struct AccessQuery {
    #[serde(default)]
    alert: String,
}

async fn access(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<AccessQuery>,
) -> Result<Json<Value>, ApiError> {
    let a = account(&app, &headers)?;
    if !a.role.may_audit() {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "only auditors may read the access records".into(),
        ));
    }
    let records = app
        .alerts(&a.identity)
        .await?
        .list_alert_access(ListAlertAccessRequest {
            alert_id: q.alert,
            limit: 500,
        })
        .await?
        .into_inner()
        .records;
    let views = records
        .iter()
        .map(|r| proto_json("timpora.v1.AlertAccess", r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(Value::Array(views)))
}

/// The account, if it may audit.
fn auditor<'a>(app: &'a App, headers: &HeaderMap) -> Result<&'a Account, ApiError> {
    let a = account(app, headers)?;
    if !a.role.may_audit() {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "only auditors may open the auditor's pages".into(),
        ));
    }
    Ok(a)
}

/// Each transparency log's latest checkpoint, its cosigners and the last verification.
async fn logs(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let a = auditor(&app, &headers)?;
    let r = app
        .audit(&a.identity)
        .await?
        .list_logs(ListLogsRequest {})
        .await?
        .into_inner();
    Ok(Json(proto_json("timpora.v1.ListLogsResponse", &r)?))
}

#[derive(Deserialize)]
struct ReplayQuery {
    #[serde(default)]
    stream: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    agency: String,
    #[serde(default, rename = "type")]
    kind: String,
    /// `json` (the page's list, at most `limit`), `ndjson` or `cloudevents` (an export of all).
    #[serde(default)]
    format: String,
    #[serde(default)]
    limit: Option<usize>,
}

/// A replay search: the records as stored, listed for the page or exported whole.
async fn replay(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<ReplayQuery>,
) -> Result<Response, ApiError> {
    let a = auditor(&app, &headers)?;
    let bad = |m: String| ApiError(StatusCode::BAD_REQUEST, m);
    let time = |t: &str, what: &str| -> Result<Option<prost_types::Timestamp>, ApiError> {
        match t.is_empty() {
            true => Ok(None),
            false => t
                .parse()
                .map(Some)
                .map_err(|_| bad(format!("{what}: not an RFC 3339 time"))),
        }
    };
    let (stream, log) = match q.stream.as_str() {
        "" | "events" => (AuditStream::Events, "events"),
        "alerts" => (AuditStream::Alerts, "alerts"),
        "access" => (AuditStream::Access, "access"),
        other => return Err(bad(format!("no stream {other:?}"))),
    };
    let one = |v: &str| match v.is_empty() {
        true => Vec::new(),
        false => vec![v.to_owned()],
    };
    let request = ReplayRequest {
        stream: stream.into(),
        since: time(&q.since, "since")?,
        until: time(&q.until, "until")?,
        agencies: one(&q.agency),
        types: one(&q.kind),
        entity_tokens: one(&q.token),
        operator: a.display_name.clone(),
        ..Default::default()
    };
    let mut records = app
        .audit(&a.identity)
        .await?
        .replay(request)
        .await?
        .into_inner();
    let export = match q.format.as_str() {
        "" | "json" => None,
        "ndjson" => Some(false),
        "cloudevents" => Some(true),
        other => return Err(bad(format!("no format {other:?}"))),
    };
    if let Some(cloud) = export {
        // The whole replay, line by line as it arrives: constant memory however long.
        let lines = futures::stream::unfold(records, move |mut records| async move {
            let m = records.message().await.ok().flatten()?;
            let m = m.record.map(timpora_audit::stored_message)?;
            let v = match cloud {
                true => timpora_audit::cloudevent_json(&m, log),
                false => timpora_audit::record_json(&m),
            };
            Some((Ok::<_, Infallible>(format!("{v}\n")), records))
        });
        let name = format!(
            "timpora-{log}.{}",
            if cloud { "cloudevents.jsonl" } else { "ndjson" }
        );
        return Ok((
            [
                (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            axum::body::Body::from_stream(lines),
        )
            .into_response());
    }
    let limit = q.limit.unwrap_or(200).min(1000);
    let mut rows = Vec::new();
    while rows.len() < limit {
        let Some(m) = records.message().await? else {
            break;
        };
        let Some(r) = m.record else { continue };
        let mut row = timpora_audit::record_json(&timpora_audit::stored_message(r.clone()));
        let decoded = match stream {
            AuditStream::Events => <Event as prost::Message>::decode(r.payload.as_slice())
                .ok()
                .map(|e| proto_json("timpora.v1.Event", &e)),
            _ => None,
        };
        if let (Some(Ok(e)), Some(o)) = (decoded, row.as_object_mut()) {
            o.insert("event".into(), e);
        }
        rows.push(row);
    }
    Ok(Json(Value::Array(rows)).into_response())
}

/// Why an alert was raised.
async fn explain(
    State(app): State<App>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let a = auditor(&app, &headers)?;
    let r = app
        .audit(&a.identity)
        .await?
        .explain(ExplainRequest {
            alert_id: id,
            operator: a.display_name.clone(),
        })
        .await?
        .into_inner();
    Ok(Json(proto_json("timpora.v1.ExplainResponse", &r)?))
}
