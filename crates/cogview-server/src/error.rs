//! Errors: [`ApiError`], what a request gets back (OpenAI's error shape with a proper status),
//! and [`ServeError`], why the server could not start.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// An error answer in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What was wrong and what to do.
    pub message: String,
    /// OpenAI's error type: `invalid_request_error`, `authentication_error`, `not_found_error`,
    /// `rate_limit_error`, `timeout_error`, `server_error`.
    pub kind: &'static str,
    /// The request field at fault, if any.
    pub param: Option<String>,
    /// A machine-readable code (e.g. `limit_exceeded`, `queue_full`, `job_not_found`).
    pub code: Option<&'static str>,
    /// Seconds to wait before retrying (sent as `Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400: a malformed or out-of-range field.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            param: Some(param.into()),
            code: Some("invalid_value"),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                message.into(),
            )
        }
    }

    /// A field over one of the server's limits: 400 (413 for the upload size), naming the limit.
    pub fn limit(param: &str, limit: &str, message: impl Into<String>) -> Self {
        let status = if limit.contains("bytes") {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError {
            param: Some(param.into()),
            code: Some("limit_exceeded"),
            ..Self::new(
                status,
                "invalid_request_error",
                format!("{} (limit {limit})", message.into()),
            )
        }
    }

    /// 401: no or a wrong bearer token.
    pub fn unauthorized() -> Self {
        ApiError {
            code: Some("invalid_api_key"),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "this server requires a bearer token: send `Authorization: Bearer TOKEN` (or `?token=TOKEN` for event streams and images)",
            )
        }
    }

    /// 404: no such job, image or route.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code: Some(code),
            ..Self::new(StatusCode::NOT_FOUND, "not_found_error", message)
        }
    }

    /// 409: the job is not in a state that allows this.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code: Some(code),
            ..Self::new(StatusCode::CONFLICT, "invalid_request_error", message)
        }
    }

    /// 429: the queue is full.
    pub fn queue_full(queue_size: usize, retry_after: u64) -> Self {
        ApiError {
            code: Some("queue_full"),
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!(
                    "the queue is full ({queue_size} jobs waiting, the server's --queue-size); retry in {retry_after} s"
                ),
            )
        }
    }

    /// 503: the server is shutting down.
    pub fn shutting_down() -> Self {
        ApiError {
            code: Some("shutting_down"),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "the server is shutting down",
            )
        }
    }

    /// 504: the request took longer than the server's request timeout.
    pub fn timeout(seconds: f64) -> Self {
        ApiError {
            code: Some("timeout"),
            ..Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout_error",
                format!(
                    "the request took longer than the server's request timeout ({seconds} s, --request-timeout); its job was cancelled"
                ),
            )
        }
    }

    /// An error of the pipeline: the caller's input (400) or the server's fault (500).
    pub fn from_pipeline(e: &cogview::Error) -> Self {
        use cogview::Error as E;
        match e {
            E::InvalidInput { field, reason } => Self::invalid(field.clone(), reason.clone()),
            E::TextTooLong { .. } => ApiError {
                code: Some("limit_exceeded"),
                ..Self::invalid("prompt", e.to_string())
            },
            E::TokenOutOfVocab { .. } => Self::invalid("prompt", e.to_string()),
            E::Cancelled => ApiError {
                code: Some("cancelled"),
                ..Self::new(
                    StatusCode::CONFLICT,
                    "invalid_request_error",
                    "the job was cancelled",
                )
            },
            // Anything else is the server's problem; its text may name server paths, so the
            // client gets a generic message and the log the details.
            e => {
                tracing::error!("pipeline error: {}", cogview::core::error::with_causes(e));
                ApiError {
                    code: Some("pipeline_error"),
                    ..Self::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        "the pipeline failed on the server (see the server's log)",
                    )
                }
            }
        }
    }

    /// The NATS queue failed (`serve --queue`): 503, the details in the server's log only.
    pub fn from_queue(e: &cogview_queue::QueueError) -> Self {
        tracing::error!("queue error: {e}");
        ApiError {
            code: Some("queue_unavailable"),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "the job queue is unavailable; try again later (the server's log has the details)",
            )
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Why `cogview serve` could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A non-loopback address without a bearer token.
    #[error("refusing to listen on {addr} without a bearer token: anything but a loopback address (127.0.0.1, ::1) needs --token TOKEN (or COGVIEW_SERVE_TOKEN)")]
    TokenRequired {
        /// The address asked for.
        addr: std::net::SocketAddr,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The system's reason.
        source: std::io::Error,
    },
    /// A setting is out of range.
    #[error("invalid setting `{setting}`: {reason}")]
    Setting {
        /// The flag.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The pipeline could not be built or its weights hashed.
    #[error(transparent)]
    Pipeline(#[from] cogview::Error),
    /// The NATS queue of `--queue` could not be used.
    #[error("{0}")]
    Queue(String),
    /// Another I/O failure (the image folder, the worker thread).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The system's reason.
        source: std::io::Error,
    },
}
