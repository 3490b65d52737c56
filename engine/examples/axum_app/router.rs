//! The axum app of `examples/axum.rs`: ordinary axum code, with nothing of
//! ringwall in it. The integration tests and the `axum-serve` benchmark
//! peer include this file too, so every one of them serves the same router.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Path;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

/// Bytes of `x` in each chunk of `/stream/{n}`.
pub const STREAM_CHUNK: usize = 1024;

pub fn router() -> Router {
    Router::new()
        .route("/", get(hello))
        .route("/echo", post(echo))
        .route("/sleep/{ms}", get(sleep))
        .route("/stream/{n}", get(stream))
        .route("/json", get(json))
}

async fn hello() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain")], "Hello, World!")
}

async fn echo(body: Body) -> Body {
    Body::from_stream(body.into_data_stream())
}

async fn sleep(Path(ms): Path<u64>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "slept"
}

async fn stream(Path(n): Path<usize>) -> Body {
    let chunks = (0..n).map(|_| Ok::<_, std::io::Error>(vec![b'x'; STREAM_CHUNK]));
    Body::from_stream(futures_util::stream::iter(chunks))
}

async fn json() -> impl IntoResponse {
    Json(serde_json::json!({ "message": "Hello, World!" }))
}
