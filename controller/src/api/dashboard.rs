//! The dashboard at `/`: three static files compiled into the binary (no CDN, no build step),
//! which read the API with the token the operator types in once (kept in `sessionStorage`, gone
//! with the tab). A viewer token is enough: the page only reads (state, nodes, map, journal,
//! the commit dry run) and follows `/api/v1/events`; it starts nothing.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../../assets/dashboard/index.html");
const APP_JS: &str = include_str!("../../assets/dashboard/app.js");
const STYLE: &str = include_str!("../../assets/dashboard/style.css");

/// Only our own origin: the page loads nothing from anywhere else, and says so to the browser.
const CSP: &str =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'";

pub fn router() -> axum::Router {
    axum::Router::new()
        .route("/", get(|| async { file("text/html; charset=utf-8", INDEX) }))
        .route("/dashboard/app.js", get(|| async { file("text/javascript; charset=utf-8", APP_JS) }))
        .route("/dashboard/style.css", get(|| async { file("text/css; charset=utf-8", STYLE) }))
}

fn file(kind: &'static str, body: &'static str) -> impl IntoResponse {
    ([(CONTENT_TYPE, kind), (CACHE_CONTROL, "no-cache"), (CONTENT_SECURITY_POLICY, CSP)], body)
}
