//! Reading a request body: within the size limit, and within the body
//! timeout, so a client that sends a few bytes and stalls cannot hold a
//! request (and its connection) open for as long as it likes.

use axum::body::Body;

use crate::rejection::ApiError;
use crate::Gateway;

/// The body as UTF-8 text: 413 past `max_body`, 408 when it has not all
/// arrived within `body_timeout`, 400 when it is not UTF-8.
pub(crate) async fn read_text(gw: &Gateway, body: Body) -> Result<String, ApiError> {
    let limit = gw.config.max_body;
    let timeout = gw.config.body_timeout;
    let bytes = match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return Err(ApiError::TooLarge { limit }),
        Err(_) => {
            return Err(ApiError::SlowBody {
                ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            })
        }
    };
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8 text".to_owned()))
}
