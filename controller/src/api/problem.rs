//! Errors of the HTTP API as RFC 9457 problem documents (`application/problem+json`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document. `type` is a stable URI-reference per kind of problem (relative:
/// `/api/v1/problems/<kind>`), `title` its short summary, `detail` what happened this time.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The input field that is wrong (bad input only), as a path: `limit`, `nodes[2]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("/api/v1/problems/{kind}"),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
        }
    }

    /// 401: no token, or a token the controller does not know.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Missing or unknown bearer token", detail)
    }

    /// 403: a known caller whose role is too low (the same words the app socket answers).
    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", "Role too low for this request", detail)
    }

    /// 400 naming the field.
    pub fn bad_field(field: impl Into<String>, detail: impl Into<String>) -> Problem {
        let field = field.into();
        let detail = format!("{field}: {}", detail.into());
        Problem {
            field: Some(field),
            ..Problem::new(StatusCode::BAD_REQUEST, "bad-input", "Invalid input", detail)
        }
    }

    /// 409: the controller understood the request and refused it (the engine's or image store's reason).
    pub fn refused(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, "refused", "Refused by the controller", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 503: the controller loop is gone or too busy to take the request (its queue is full).
    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Controller busy or stopping", detail)
    }

    /// 500: a bug or a disk problem on our side.
    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, axum::Json(&self)).into_response();
        resp.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
