//! Sending SSE events with the stream faults of a scenario (delays, stalls, truncation,
//! broken chunks), in DashScope's `data: ` or iFlow's `data:` framing.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::HeaderValue;
use axum::response::Response;
use tokio::sync::mpsc;

use crate::plan::Flavor;
use crate::request::Shared;
use crate::scenario::Scenario;
use crate::state::State;

/// The longest a `stall-after` stream holds its connection open.
const MAX_STALL: Duration = Duration::from_secs(120);

type Tx = mpsc::Sender<Result<Bytes, std::io::Error>>;

/// Starts sending `events` (then `[DONE]`) and returns the streaming response.
pub(crate) fn sse_response(st: Shared, events: Vec<String>, sc: Scenario, flavor: Flavor) -> Response {
    State::bump(&st.stream_requests);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let (prefix, content_type) = match flavor {
        Flavor::DashScope => ("data: ", "text/event-stream"),
        // iFlow: no space after the colon, and a charset (§3.5).
        Flavor::IFlow => ("data:", "text/event-stream;charset=UTF-8"),
    };
    tokio::spawn(send_stream(st, tx, events, sc, prefix));
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert("content-type", HeaderValue::from_static(content_type));
    resp.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache"));
    resp
}

/// The client closed the connection.
struct Gone;

async fn pause(tx: &Tx, d: Duration) -> Result<(), Gone> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = tx.closed() => Err(Gone),
    }
}

async fn send(tx: &Tx, prefix: &str, data: &str) -> Result<(), Gone> {
    tx.send(Ok(Bytes::from(format!("{prefix}{data}\n\n")))).await.map_err(|_| Gone)
}

async fn send_stream(st: Shared, tx: Tx, events: Vec<String>, sc: Scenario, prefix: &'static str) {
    let outcome: Result<(), Gone> = async {
        for (i, ev) in events.iter().enumerate() {
            if i == 0 {
                if let Some(d) = sc.first_token_delay {
                    pause(&tx, d).await?;
                }
            } else if let Some(d) = sc.chunk_delay {
                pause(&tx, d).await?;
            }
            if sc.stall_after == Some(i) {
                pause(&tx, MAX_STALL).await?;
                return Ok(());
            }
            if sc.truncate_after == Some(i) {
                // An error in the body makes hyper drop the connection without the final
                // chunk: the client sees a body cut short. The pause lets what was sent
                // before reach the client first, as it would from a real upstream.
                pause(&tx, Duration::from_millis(20)).await?;
                let _ = tx.send(Err(std::io::Error::other("mock truncation"))).await;
                return Ok(());
            }
            if sc.malformed_after == Some(i) {
                send(&tx, prefix, "{\"id\":\"chatcmpl-x\",\"choices\":[{\"delta\":{\"content\":\"bro").await?;
            }
            if sc.error_after == Some(i) {
                send(&tx, prefix, r#"{"error":{"message":"The upstream model crashed","type":"server_error","code":"internal_error"}}"#).await?;
                return Ok(());
            }
            send(&tx, prefix, ev).await?;
        }
        if !sc.no_done {
            send(&tx, prefix, "[DONE]").await?;
        }
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => State::bump(&st.streams_completed),
        Err(Gone) => State::bump(&st.streams_cancelled),
    }
}
