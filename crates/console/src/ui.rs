//! The page itself: the HTML, CSS and JavaScript embedded in the binary, served with a strict
//! Content-Security-Policy, and the pages a logged-in account may open.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::api::{App, signed_in};
use crate::auth::Role;

pub(crate) const APP_HTML: &str = include_str!("assets/app.html");
pub(crate) const LOGIN_HTML: &str = include_str!("assets/login.html");
pub(crate) const APP_JS: &str = include_str!("assets/app.js");
pub(crate) const LOGIN_JS: &str = include_str!("assets/login.js");
pub(crate) const I18N_JS: &str = include_str!("assets/i18n.js");
pub(crate) const APP_CSS: &str = include_str!("assets/app.css");

/// The embedded assets, each at its path.
pub(crate) fn assets(router: Router<App>) -> Router<App> {
    router
        .route("/login", get(|| async { html(LOGIN_HTML) }))
        .route("/", get(home))
        .route("/alerts/{id}", get(page))
        .route("/subjects/{id}", get(page))
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
}

pub(crate) async fn security_headers(State(secure): State<bool>, mut r: Response) -> Response {
    let h = r.headers_mut();
    if secure {
        // Served over TLS: browsers keep to it for a year.
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
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

pub(crate) fn html(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

pub(crate) fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn page(State(app): State<App>, headers: HeaderMap) -> Response {
    match signed_in(&app, &headers) {
        Ok(a) if a.role == Role::Village => forbidden(a, "operations page"),
        Ok(_) => html(APP_HTML),
        Err(_) => Redirect::to("/login").into_response(),
    }
}

/// The start page: the alerts for operations, a village's own page for a village.
async fn home(State(app): State<App>, headers: HeaderMap) -> Response {
    match signed_in(&app, &headers) {
        Ok(a) if a.role == Role::Village => Redirect::to(Role::Village.home()).into_response(),
        Ok(_) => html(APP_HTML),
        Err(_) => Redirect::to("/login").into_response(),
    }
}

async fn audit_page(State(app): State<App>, headers: HeaderMap) -> Response {
    match signed_in(&app, &headers) {
        Ok(a) if a.role.may_audit() => html(APP_HTML),
        Ok(a) => forbidden(a, "audit page"),
        Err(_) => Redirect::to("/login").into_response(),
    }
}

/// 403: `a` may not open this page.
pub(crate) fn forbidden(a: &crate::auth::Account, what: &str) -> Response {
    tracing::warn!(user = %a.username, page = what, "page refused");
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("assets/forbidden.html"),
    )
        .into_response()
}
