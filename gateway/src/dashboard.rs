//! The dashboard at `/`: plain ES modules and CSS under `gateway/assets/`,
//! embedded in the binary (no build step, no network at run time). Each
//! file is served with its content type, an `ETag` and `Cache-Control:
//! no-cache`, so a browser revalidates and gets `304` until the binary
//! changes.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            bytes: include_bytes!(concat!("../assets/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the page; `index.html` is served at `/`.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("js/main.js", JS),
    asset!("js/view.js", JS),
    asset!("js/api.js", JS),
    asset!("js/auth.js", JS),
    asset!("js/ws.js", JS),
    asset!("js/store.js", JS),
    asset!("js/tree.js", JS),
    asset!("js/board.js", JS),
    asset!("js/forms.js", JS),
    asset!("js/quanta.js", JS),
    asset!("js/console.js", JS),
    asset!("js/schema_form.js", JS),
    asset!("js/charts.js", JS),
    asset!("js/time.js", JS),
    asset!("js/effort.js", JS),
    asset!("js/filters.js", JS),
];

/// The `ETag` of each asset, in the order of [`ASSETS`]: FNV-1a of its
/// bytes, computed once.
fn etags() -> &'static [HeaderValue] {
    static TAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let hash = a.bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
                });
                // Hex digits in quotes are always a valid header value.
                HeaderValue::from_str(&format!("\"{hash:016x}\""))
                    .unwrap_or(HeaderValue::from_static("\"0\""))
            })
            .collect()
    })
}

fn serve(path: &str, headers: &HeaderMap) -> Option<Response> {
    let i = ASSETS.iter().position(|a| a.path == path)?;
    let asset = &ASSETS[i];
    let etag = etags().get(i)?.clone();
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let cache = (CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if fresh {
        return Some((StatusCode::NOT_MODIFIED, [(ETAG, etag), cache]).into_response());
    }
    Some(
        (
            [
                (CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
                (ETAG, etag),
                cache,
            ],
            asset.bytes,
        )
            .into_response(),
    )
}

/// `GET /`: the page.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers).unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
}

/// `GET /assets/<path>`: one of the page's files, or a JSON 404.
pub(crate) async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers).unwrap_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({
                "error": format!("no dashboard file {path:?}; the page is at /"),
            })),
        )
            .into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_and_revalidates_with_its_etag() {
        for a in ASSETS {
            let Some(first) = serve(a.path, &HeaderMap::new()) else {
                panic!("{} not served", a.path)
            };
            assert_eq!(first.status(), StatusCode::OK);
            let Some(etag) = first.headers().get(ETAG).cloned() else {
                panic!("no etag on {}", a.path)
            };
            let mut again = HeaderMap::new();
            again.insert(IF_NONE_MATCH, etag);
            let second = serve(a.path, &again).map(|r| r.status());
            assert_eq!(second, Some(StatusCode::NOT_MODIFIED), "{}", a.path);
        }
        assert!(serve("../Cargo.toml", &HeaderMap::new()).is_none());
    }
}
