//! The accept loop: one task per connection, HTTP/1.1 and HTTP/2 (prior knowledge) on the
//! same port, connection counting, and a way for a handler to reset its own connection.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::blackhole::Blackhole;
use crate::control::{IflowControl, QwenControl};
use crate::state::{RecordedRequest, State, Stats};

#[derive(Debug, Clone, Default)]
pub struct MockConfig {
    /// 0 picks a free port.
    pub port: u16,
    /// Accepted bearer keys; empty accepts any (or none).
    pub api_keys: Vec<String>,
    /// Models listed by `GET /v1/models` and `GET /compatible-mode/v1/models`.
    pub models: Vec<String>,
}

/// Given to each request: lets a handler reset the TCP connection it arrived on.
#[derive(Clone)]
pub(crate) struct ConnHandle {
    fd: RawFd,
    kill: CancellationToken,
}

impl ConnHandle {
    /// Makes the connection end with RST instead of FIN, then drops it.
    pub fn reset(&self) {
        // SAFETY: the connection task owns the socket until `kill` fires and the connection
        // future is dropped, which happens only after this call; the fd is valid here.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = socket2::SockRef::from(&fd).set_linger(Some(std::time::Duration::ZERO));
        self.kill.cancel();
    }
}

pub struct MockServer {
    addr: SocketAddr,
    blackhole: Blackhole,
    state: Arc<State>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Binds 127.0.0.1 and starts serving on the current tokio runtime.
    pub async fn start(config: MockConfig) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, config.port))).await?;
        let addr = listener.local_addr()?;
        let models = if config.models.is_empty() {
            // OpenAI's, DashScope's and the Qwen OAuth tier's names (§2.7).
            ["gpt-4o-mini", "qwen-turbo", "qwen-plus", "qwen3-coder-plus", "qwen3-coder-flash", "coder-model", "vision-model"]
                .map(String::from)
                .to_vec()
        } else {
            config.models
        };
        let state = Arc::new(State { port: addr.port(), api_keys: config.api_keys.into(), models, ..Default::default() });
        let shutdown = CancellationToken::new();
        let router = Router::new()
            .merge(crate::openai::routes())
            .merge(crate::qwen_oauth::routes())
            .merge(crate::iflow::routes())
            .merge(crate::control::routes())
            .with_state(state.clone());
        let task = tokio::spawn(accept_loop(listener, router, state.clone(), shutdown.clone()));
        Ok(MockServer { addr, blackhole: Blackhole::open()?, state, shutdown, task: Some(task) })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>`; the OpenAI base is this plus `/v1`. It is also the Qwen
    /// OAuth base (`/api/v1/oauth2/...`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The DashScope API-key base: `<url>/compatible-mode/v1`.
    pub fn dashscope_base(&self) -> String {
        format!("{}/compatible-mode/v1", self.url())
    }

    /// The iFlow chat base: `<url>/iflow/v1`. The iFlow account endpoints are
    /// `<url>/iflow/oauth`, `<url>/iflow/oauth/token` and `<url>/iflow/api/oauth/getUserInfo`.
    pub fn iflow_base(&self) -> String {
        format!("{}/iflow/v1", self.url())
    }

    /// Scripts and inspects the Qwen OAuth and chat mocks.
    pub fn qwen(&self) -> QwenControl {
        QwenControl::new(self.state.clone())
    }

    /// Scripts and inspects the iFlow OAuth, user-info and chat mocks.
    pub fn iflow(&self) -> IflowControl {
        IflowControl::new(self.state.clone())
    }

    /// One control action in its JSON form, exactly as `POST /__mock/<group>/<action>` runs
    /// it (see [`crate::control`]), e.g. `control("qwen/script", json!({"steps":["approve"]}))`.
    pub fn control(&self, action: &str, body: &serde_json::Value) -> Result<serde_json::Value, String> {
        let (group, name) = action.trim_matches('/').split_once('/').ok_or_else(|| format!("control action {action:?} is not <group>/<action>"))?;
        crate::control::dispatch(&self.state, group, name, body)
    }

    /// A loopback port on which connecting never completes.
    pub fn blackhole_port(&self) -> u16 {
        self.blackhole.port
    }

    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// Replaces the accepted keys (empty accepts any): a key dropped here starts getting 401.
    pub fn set_api_keys(&self, keys: Vec<String>) {
        *self.state.api_keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }

    /// Zeroes the counters, forgets recorded requests, and puts the Qwen and iFlow mocks back
    /// to their defaults (tokens, scripts, switches). The configured API keys stay.
    pub fn reset(&self) {
        self.state.reset()
    }

    /// Stops accepting and closes every open connection.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn accept_loop(listener: TcpListener, router: Router, state: Arc<State>, shutdown: CancellationToken) {
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        State::bump(&state.connections_opened);
        let conn = ConnHandle { fd: stream.as_raw_fd(), kill: CancellationToken::new() };
        let kill = conn.kill.clone();
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(conn.clone());
            router.clone().oneshot(req)
        });
        let state = state.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let serve = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = serve => {}
                _ = kill.cancelled() => {}
                _ = shutdown.cancelled() => {}
            }
            State::bump(&state.connections_closed);
        });
    }
    connections.close();
    connections.wait().await;
}
