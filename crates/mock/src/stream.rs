//! Sending SSE events with the stream faults of a scenario (delays, stalls, truncation,
//! broken chunks), in DashScope's `data: ` or iFlow's `data:` framing. Events that nothing
//! separates go out together, up to 16 KB per write, as a buffered server sends them; every
//! delay and injected fault comes after a flush, so fault scenarios look the same as before.

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

/// The most bytes of consecutive events gathered into one write. Events that nothing (no
/// delay, stall or injected fault) separates go out together, as a real server's buffered
/// writer sends them: a client must handle several events per read.
const COALESCE_BYTES: usize = 16 * 1024;

async fn pause(tx: &Tx, d: Duration) -> Result<(), Gone> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = tx.closed() => Err(Gone),
    }
}

/// Frames events as SSE and gathers them into writes of up to [`COALESCE_BYTES`].
struct Writer<'a> {
    tx: &'a Tx,
    prefix: &'static str,
    buf: Vec<u8>,
}

impl Writer<'_> {
    fn frame(&mut self, data: &str) {
        if self.buf.capacity() == 0 {
            self.buf.reserve(COALESCE_BYTES + 1024);
        }
        self.buf.extend_from_slice(self.prefix.as_bytes());
        self.buf.extend_from_slice(data.as_bytes());
        self.buf.extend_from_slice(b"\n\n");
    }

    /// Adds an event to the pending write; sends it once it is big enough.
    async fn queue(&mut self, data: &str) -> Result<(), Gone> {
        self.frame(data);
        if self.buf.len() >= COALESCE_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends what is pending, if anything.
    async fn flush(&mut self) -> Result<(), Gone> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let bytes = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.send(Ok(bytes)).await.map_err(|_| Gone)
    }

    /// Sends what is pending, then `data` as a write of its own (an injected fault keeps the
    /// framing it has always had).
    async fn alone(&mut self, data: &str) -> Result<(), Gone> {
        self.flush().await?;
        self.frame(data);
        self.flush().await
    }
}

async fn send_stream(st: Shared, tx: Tx, events: Vec<String>, sc: Scenario, prefix: &'static str) {
    match write_events(&tx, &events, &sc, prefix).await {
        Ok(()) => State::bump(&st.streams_completed),
        Err(Gone) => State::bump(&st.streams_cancelled),
    }
}

/// Writes `events` (then `[DONE]`) with the scenario's stream faults. Pending events are
/// always sent before a delay, a stall, a truncation or an injected event.
async fn write_events(tx: &Tx, events: &[String], sc: &Scenario, prefix: &'static str) -> Result<(), Gone> {
    let mut w = Writer { tx, prefix, buf: Vec::new() };
    for (i, ev) in events.iter().enumerate() {
        let delay = if i == 0 { sc.first_token_delay } else { sc.chunk_delay };
        if let Some(d) = delay {
            w.flush().await?;
            pause(tx, d).await?;
        }
        if sc.stall_after == Some(i) {
            w.flush().await?;
            pause(tx, MAX_STALL).await?;
            return Ok(());
        }
        if sc.truncate_after == Some(i) {
            // An error in the body makes hyper drop the connection without the final
            // chunk: the client sees a body cut short. The pause lets what was sent
            // before reach the client first, as it would from a real upstream.
            w.flush().await?;
            pause(tx, Duration::from_millis(20)).await?;
            let _ = tx.send(Err(std::io::Error::other("mock truncation"))).await;
            return Ok(());
        }
        if sc.malformed_after == Some(i) {
            w.alone("{\"id\":\"chatcmpl-x\",\"choices\":[{\"delta\":{\"content\":\"bro").await?;
        }
        if sc.error_after == Some(i) {
            w.alone(r#"{"error":{"message":"The upstream model crashed","type":"server_error","code":"internal_error"}}"#).await?;
            return Ok(());
        }
        w.queue(ev).await?;
    }
    if !sc.no_done {
        w.queue("[DONE]").await?;
    }
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{{\"n\":{i}}}")).collect()
    }

    /// Every write `write_events` makes, as text (`None` for the truncation error).
    fn writes(evs: &[String], scenario: &str) -> Vec<Option<String>> {
        let sc = Scenario::parse(scenario).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let (tx, mut rx) = mpsc::channel(16);
            let evs = evs.to_vec();
            let writer = tokio::spawn(async move { write_events(&tx, &evs, &sc, "data: ").await.is_ok() });
            let mut out = Vec::new();
            while let Some(item) = rx.recv().await {
                out.push(item.ok().map(|b| String::from_utf8(b.to_vec()).unwrap()));
            }
            assert!(writer.await.unwrap());
            out
        })
    }

    fn framed(data: &[&str]) -> String {
        data.iter().map(|d| format!("data: {d}\n\n")).collect()
    }

    #[test]
    fn events_without_delay_are_coalesced_in_order() {
        let evs = events(500);
        let w = writes(&evs, "");
        assert!(w.len() < 10, "{} writes for 500 events", w.len());
        assert!(w.iter().all(|x| x.as_ref().is_some_and(|s| s.len() < COALESCE_BYTES + 1024)));
        let all: String = w.into_iter().map(Option::unwrap).collect();
        let mut want: Vec<&str> = evs.iter().map(String::as_str).collect();
        want.push("[DONE]");
        assert_eq!(all, framed(&want));
    }

    #[test]
    fn a_chunk_delay_keeps_one_event_per_write() {
        let evs = events(3);
        let w = writes(&evs, "chunk-delay=1");
        assert_eq!(w, vec![Some(framed(&["{\"n\":0}"])), Some(framed(&["{\"n\":1}"])), Some(framed(&["{\"n\":2}", "[DONE]"]))]);
    }

    #[test]
    fn faults_are_written_on_their_own() {
        let evs = events(4);
        let broken = "{\"id\":\"chatcmpl-x\",\"choices\":[{\"delta\":{\"content\":\"bro";
        assert_eq!(
            writes(&evs, "malformed-after=2"),
            vec![Some(framed(&["{\"n\":0}", "{\"n\":1}"])), Some(framed(&[broken])), Some(framed(&["{\"n\":2}", "{\"n\":3}", "[DONE]"]))]
        );
        let error = r#"{"error":{"message":"The upstream model crashed","type":"server_error","code":"internal_error"}}"#;
        assert_eq!(writes(&evs, "error-after=1"), vec![Some(framed(&["{\"n\":0}"])), Some(framed(&[error]))]);
        assert_eq!(writes(&evs, "truncate-after=3"), vec![Some(framed(&["{\"n\":0}", "{\"n\":1}", "{\"n\":2}"])), None]);
        assert_eq!(writes(&evs, "no-done,first-token-delay=1"), vec![Some(framed(&["{\"n\":0}", "{\"n\":1}", "{\"n\":2}", "{\"n\":3}"]))]);
    }
}
