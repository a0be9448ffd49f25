//! What the scheduler schedules over: anything that can answer a chat request, natively (an
//! `OpenAICompatibleProvider`, a `Pipeline` of targets) or through JS (a `BaseProvider`
//! subclass, bridged by the binding).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::Result;
use crate::model::{ChatRequest, ChatResponse};
use crate::provider::{CallOptions, ChunkStream, HealthReport, OpenAICompatibleProvider};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// An answer and, when the backend chose among targets, which one produced it.
pub struct Served<T> {
    pub value: T,
    pub target_id: Option<Arc<str>>,
}

impl<T> Served<T> {
    pub fn direct(value: T) -> Self {
        Served { value, target_id: None }
    }
}

pub trait Backend: Send + Sync + 'static {
    fn chat(&self, req: ChatRequest, opts: CallOptions) -> BoxFuture<Result<Served<ChatResponse>>>;
    fn stream_chat(&self, req: ChatRequest, opts: CallOptions) -> BoxFuture<Result<Served<ChunkStream>>>;
    fn health_check(&self) -> BoxFuture<HealthReport>;
    /// A step before each call that obtains or refreshes credentials (OAuth providers), timed
    /// as the `authentication` stage; `None` when the backend needs none.
    fn authenticate(&self) -> Option<BoxFuture<Result<()>>> {
        None
    }
}

impl Backend for OpenAICompatibleProvider {
    fn chat(&self, req: ChatRequest, opts: CallOptions) -> BoxFuture<Result<Served<ChatResponse>>> {
        let p = self.clone();
        Box::pin(async move { p.chat(req, opts).await.map(Served::direct) })
    }

    fn stream_chat(&self, req: ChatRequest, opts: CallOptions) -> BoxFuture<Result<Served<ChunkStream>>> {
        let p = self.clone();
        Box::pin(async move { p.stream_chat(req, opts).map(Served::direct) })
    }

    fn health_check(&self) -> BoxFuture<HealthReport> {
        let p = self.clone();
        Box::pin(async move { p.health_check().await })
    }

    /// Vendor credentials (OAuth) are obtained or refreshed here, timed as `authentication`.
    fn authenticate(&self) -> Option<BoxFuture<Result<()>>> {
        let creds = self.inner.credentials.clone()?;
        Some(creds.prepare())
    }
}
