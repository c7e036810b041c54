//! The operations console: a web page for duty officers and auditors, served by axum with its
//! assets embedded in the binary (no CDN: the offices it runs in may have no internet).
//!
//! The console is a client of the gateway: every read and every action goes through the
//! gateway's `AlertService` as the gateway identity of the logged-in account, so the gateway's
//! read rights apply unchanged, actions carry the operator's name next to that identity, and
//! every page view of an alert is stored in the access records before the alert is shown.

pub mod auth;
mod error;

pub use error::Error;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use timpora_proto::regions;
use timpora_proto::v1::alert_service_client::AlertServiceClient;
use timpora_proto::v1::*;

use timpora_client::actions::{self, Step};
use timpora_client::{Conn, Keyring, Target};

use auth::Sessions;
pub use auth::{Account, Role};

/// The console's configuration (`[console]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to serve the console on.
    pub listen: SocketAddr,
    /// A session ends after this many minutes without use.
    pub idle_minutes: u64,
    /// A session ends this many hours after login, used or not (one shift).
    pub max_hours: u64,
    /// Units (`agency/unit`) an alert can be assigned to from the console.
    pub units: Vec<String>,
    /// Who may log in.
    pub accounts: Vec<Account>,
    /// Client certificates the console presents to the gateway, one per identity its accounts
    /// act as. Without one, the development credentials in the data directory are used.
    pub clients: Vec<ClientCert>,
    /// CA that issued the gateway's certificate (default: the development CA, if any).
    pub gateway_ca: Option<PathBuf>,
}

/// A client certificate for one gateway identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCert {
    pub identity: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            idle_minutes: 30,
            max_hours: 12,
            units: Vec::new(),
            accounts: Vec::new(),
            clients: Vec::new(),
            gateway_ca: None,
        }
    }
}

const APP_HTML: &str = include_str!("assets/app.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");
const APP_JS: &str = include_str!("assets/app.js");
const LOGIN_JS: &str = include_str!("assets/login.js");
const I18N_JS: &str = include_str!("assets/i18n.js");
const APP_CSS: &str = include_str!("assets/app.css");
const COOKIE: &str = "timpora_session";

struct Shared {
    accounts: Vec<Account>,
    units: Vec<String>,
    sessions: Sessions,
    gateway: Target,
    keyring: Keyring,
    conns: Mutex<HashMap<String, Conn>>,
    /// Becomes true at shutdown: live streams end so the server can drain.
    stopping: tokio::sync::watch::Receiver<bool>,
}

type App = Arc<Shared>;

impl Shared {
    async fn alerts(&self, identity: &str) -> Result<AlertServiceClient<Conn>, ApiError> {
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
        Ok(AlertServiceClient::new(conn))
    }
}

fn invalid(what: String) -> Result<(), Error> {
    Err(Error::Config(what))
}

impl Config {
    /// Refuse a configuration the console cannot serve: no accounts, an account twice, a
    /// password hash that is not an argon2 PHC string, an identity that is not `agency/unit`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.accounts.is_empty() {
            return invalid(
                "no console accounts configured: add [[console.accounts]] (see `timpora console \
                 hash-password`) or run `timpora dev init` for development accounts"
                    .into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for a in &self.accounts {
            if !seen.insert(a.username.as_str()) {
                return invalid(format!(
                    "console account {} is configured twice",
                    a.username
                ));
            }
            if argon2::password_hash::PasswordHash::new(&a.password_hash).is_err() {
                return invalid(format!(
                    "console account {}: password_hash is not an argon2 PHC string",
                    a.username
                ));
            }
            let agency_unit = a
                .identity
                .split_once('/')
                .is_some_and(|(g, u)| !g.is_empty() && !u.is_empty());
            if !agency_unit {
                return invalid(format!(
                    "console account {}: identity must be agency/unit, e.g. ops/timpora-kendari",
                    a.username
                ));
            }
        }
        Ok(())
    }

    /// The gateway identities the console acts as, with the client certificates configured
    /// for them added to `keyring`.
    pub fn keyring(&self, keyring: Keyring) -> Keyring {
        self.clients.iter().fold(keyring, |k, c| {
            k.certificate(&c.identity, c.cert.clone(), c.key.clone())
        })
    }
}

/// Serve the console on `listener` until `shutdown` completes: every read and action goes to
/// the gateway at `gateway`, as each account's identity with its credentials from `keyring`.
pub async fn serve(
    config: Config,
    gateway: Target,
    keyring: Keyring,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    let keyring = config.keyring(keyring);
    let gateway = Target {
        ca: config.gateway_ca.clone().or(gateway.ca),
        ..gateway
    };
    let (stop_tx, stopping) = tokio::sync::watch::channel(false);
    let state = Arc::new(Shared {
        accounts: config.accounts,
        units: config.units,
        sessions: Sessions::new(
            Duration::from_secs(config.idle_minutes.max(1) * 60),
            Duration::from_secs(config.max_hours.max(1) * 3600),
        ),
        gateway,
        keyring,
        conns: Mutex::default(),
        stopping,
    });
    let app = router(state);
    tracing::info!(addr = %listener.local_addr()?, "console listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
        .await?;
    Ok(())
}

fn router(state: App) -> Router {
    Router::new()
        .route("/login", get(|| async { html(LOGIN_HTML) }))
        .route("/", get(page))
        .route("/alerts/{id}", get(page))
        .route("/overview", get(page))
        .route("/audit", get(audit_page))
        .route(
            "/assets/app.js",
            get(|| async { asset(APP_JS, "text/javascript") }),
        )
        .route(
            "/assets/login.js",
            get(|| async { asset(LOGIN_JS, "text/javascript") }),
        )
        .route(
            "/assets/i18n.js",
            get(|| async { asset(I18N_JS, "text/javascript") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset(APP_CSS, "text/css") }),
        )
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/alerts", get(list))
        .route("/api/alerts/{id}", get(show))
        .route("/api/alerts/{id}/{action}", post(act))
        .route("/api/stream", get(stream))
        .route("/api/overview", get(overview))
        .route("/api/audit/access", get(access))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

fn html(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// An API failure: a status and a message for the page.
struct ApiError(StatusCode, String);

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

fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// The logged-in account, or 401.
fn account<'a>(app: &'a App, headers: &HeaderMap) -> Result<&'a Account, ApiError> {
    session_token(headers)
        .and_then(|t| app.sessions.account(t))
        .and_then(|i| app.accounts.get(i))
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "not logged in".into()))
}

/// Changes must come from the console's own scripts (a custom header no form can send).
fn from_script(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.get("x-timpora-console").is_some() {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::FORBIDDEN,
            "missing x-timpora-console header".into(),
        ))
    }
}

async fn page(State(app): State<App>, headers: HeaderMap) -> Response {
    match account(&app, &headers) {
        Ok(_) => html(APP_HTML),
        Err(_) => Redirect::to("/login").into_response(),
    }
}

async fn audit_page(State(app): State<App>, headers: HeaderMap) -> Response {
    match account(&app, &headers) {
        Ok(a) if a.role.may_audit() => html(APP_HTML),
        Ok(a) => {
            tracing::warn!(user = %a.username, "audit page refused");
            (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                include_str!("assets/forbidden.html"),
            )
                .into_response()
        }
        Err(_) => Redirect::to("/login").into_response(),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(
    State(app): State<App>,
    headers: HeaderMap,
    Json(f): Json<LoginForm>,
) -> Result<Response, ApiError> {
    from_script(&headers)?;
    if app.sessions.locked(&f.username) {
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
    let verified = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let ok = found.is_some() && verified;
    let Some(i) = found.filter(|_| ok) else {
        app.sessions.failed(&f.username);
        tracing::warn!(user = %f.username, "console login failed");
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
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    Ok(([(header::SET_COOKIE, cookie)], Json(json!({ "ok": true }))).into_response())
}

async fn logout(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(t) = session_token(&headers) {
        app.sessions.close(t);
    }
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Json(json!({ "ok": true }))).into_response()
}

async fn me(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let a = account(&app, &headers)?;
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
    let token = session_token(&headers).unwrap_or_default().to_owned();
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
