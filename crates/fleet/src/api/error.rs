//! The API's errors in AWS's shape (docs/spec/detect-api.md §1.2): a type, a status, a message
//! for a person. A store failure is logged whole and answered without its details.

use crate::store::StoreError;

use super::Response;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            kind: "InvalidRequestException",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 404,
            kind: "ResourceNotFoundException",
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 401,
            kind: "UnauthorizedException",
            message: message.into(),
        }
    }

    pub fn method(method: &str, path: &str) -> ApiError {
        ApiError {
            status: 405,
            kind: "MethodNotAllowed",
            message: format!("{method} is not allowed on {path:?}"),
        }
    }

    pub fn response(&self) -> Response {
        let body = serde_json::json!({"__type": self.kind, "message": self.message});
        let mut r = Response::json(self.status, &body);
        r.headers.push(("x-amzn-ErrorType", self.kind.to_string()));
        r
    }
}

impl From<StoreError> for ApiError {
    /// Logged with its details (the database path included); answered without them.
    fn from(e: StoreError) -> ApiError {
        tracing::error!("API: store: {e}");
        ApiError {
            status: 500,
            kind: "InternalFailureException",
            message: "the store failed to answer; the server's log has the details".into(),
        }
    }
}
