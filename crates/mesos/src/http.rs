//! HTTP pieces the master and agent share: Mesos's plain-text errors, its media-type checks,
//! and RecordIO event-stream responses.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::mpsc::Receiver;

/// A plain-text answer, as Mesos gives its errors.
pub(crate) fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.into(),
    )
        .into_response()
}

/// Checks the request's media types as Mesos does: JSON in, JSON out.
pub(crate) fn check_json(headers: &HeaderMap) -> Result<(), Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.is_empty() {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "Expecting 'Content-Type' to be present",
        ));
    }
    if !ct.starts_with("application/json") {
        return Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Expecting 'Content-Type' of application/json (dcos-rs does not speak application/x-protobuf); got '{ct}'"),
        ));
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    if !(accept.contains("application/json")
        || accept.contains("*/*")
        || accept.contains("application/*"))
    {
        return Err(text(
            StatusCode::NOT_ACCEPTABLE,
            format!("Expecting 'Accept' to allow application/json; got '{accept}'"),
        ));
    }
    Ok(())
}

/// A RecordIO event stream response.
pub(crate) fn stream_response(
    rx: Receiver<Bytes>,
    on_close: impl FnOnce() + Send + 'static,
    extra: Option<(&'static str, String)>,
) -> Response {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    let guard = Guard(Some(on_close));
    // The guard lives as long as the body: when the client goes away, hyper drops the body.
    let stream = ReceiverStream::new(rx).map(move |b| {
        let _ = &guard;
        Ok::<_, Infallible>(b)
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some((name, value)) = extra {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

/// A tokio receiver as a `Stream`, to avoid a tokio-stream dependency.
struct ReceiverStream<T>(Receiver<T>);

impl<T> ReceiverStream<T> {
    fn new(rx: Receiver<T>) -> Self {
        ReceiverStream(rx)
    }
}

impl<T> futures::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}
