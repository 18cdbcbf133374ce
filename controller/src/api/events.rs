//! `GET /api/v1/events`: server-sent events of state changes.
//!
//! The loop publishes on a broadcast channel: every engine event (transitions, commands — the
//! lines the log gets) as `event: engine`, and at each tick the nodes whose state, version or
//! liveness changed as `event: nodes`. A subscriber that falls [`super::EVENT_BUFFER`] events
//! behind gets `event: lagged` and should re-read `/state` and `/nodes`.

use super::dto::EventDto;
use super::problem::Problem;
use super::ApiState;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use std::convert::Infallible;
use tokio::sync::broadcast::error::RecvError;

/// Server-sent events of state changes. Besides the bearer header, the token may come as
/// `?access_token=` (a browser's EventSource cannot send headers); no other route reads it there.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    params(("access_token" = Option<String>, Query, description = "the bearer token, for EventSource")),
    responses(
        (status = 200, description = "text/event-stream; events `hello`, `engine`, `nodes`, `lagged`", body = EventDto, content_type = "text/event-stream"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn events(
    State(s): State<ApiState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let header = super::routes::bearer(&headers);
    let from_query = query.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    });
    let caller = s.authenticate(header.or(from_query.as_deref()))?;
    tracing::debug!(who = %caller.name, "event stream opened");
    let hello = Event::default().event("hello").data(caller.name);
    let rx = s.subscribe();
    let updates = stream::unfold(rx, |mut rx| async move {
        let ev = match rx.recv().await {
            Ok(ev) => {
                let kind = match &ev {
                    EventDto::Engine { .. } => "engine",
                    EventDto::Nodes { .. } => "nodes",
                };
                let data = serde_json::to_string(&ev).unwrap_or_default();
                Event::default().event(kind).data(data)
            }
            Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(ev), rx))
    });
    Ok(Sse::new(stream::once(async { Ok(hello) }).chain(updates)).keep_alive(KeepAlive::default()))
}
