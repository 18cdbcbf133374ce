//! HTTP side of distribution: the embedded tracker at `/announce` and image files at
//! `/images/<sha256>.mlimg` (Range requests handled by tower-http's `ServeFile`).
//!
//! The lead merges [`router`] into the controller's axum server. The tracker needs the peer's
//! address, so that server must be started with
//! `into_make_service_with_connect_info::<SocketAddr>()`.

use super::store::{ImageStore, IMAGE_EXT};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use meshlift_protocol::Sha256Digest;
use std::net::SocketAddr;
use tower::ServiceExt;
use tower_http::services::ServeFile;

/// Routes for `/announce` and `/images/{file}`, sharing `store`.
pub fn router(store: ImageStore) -> Router {
    Router::new().route("/announce", get(announce)).route("/images/{file}", get(image)).with_state(store)
}

async fn announce(State(store): State<ImageStore>, req: Request) -> Response {
    let remote = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let body = match remote {
        Some(ip) => store.announce(req.uri().query().unwrap_or(""), ip),
        None => super::tracker::failure_bencode(
            "tracker cannot see the peer address (server started without connect info)",
        ),
    };
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

async fn image(State(store): State<ImageStore>, Path(file): Path<String>, req: Request) -> Response {
    let sha = file.strip_suffix(&format!(".{IMAGE_EXT}")).and_then(|hex| hex.parse::<Sha256Digest>().ok());
    let Some(path) = sha.and_then(|sha| store.path_by_sha(&sha)) else {
        return (StatusCode::NOT_FOUND, "no such image\n").into_response();
    };
    match ServeFile::new(path).oneshot(req).await {
        Ok(resp) => resp.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}
