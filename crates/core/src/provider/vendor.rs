//! The two hooks through which a vendor's provider (Qwen, iFlow) shapes the shared
//! OpenAI-compatible transport: `Credentials` (what authorizes each HTTP request, and what to
//! do when the upstream rejects it) and `Quirks` (request fixups and the error shapes the
//! OpenAI protocol does not describe). A plain OpenAI-compatible provider has neither.

use std::sync::Arc;

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::{ChatChunk, ChatRequest};
use crate::schedule::BoxFuture;

/// What authorizes one HTTP request.
#[derive(Default)]
pub struct Authorization {
    /// `Authorization` and any signed headers, added to the request (values marked sensitive).
    pub headers: HeaderMap,
    /// Replaces the configured base URL (Qwen's OAuth `resource_url`).
    pub base_url: Option<String>,
    /// Which credential this was, so that a rejection refreshes that one and not a newer one.
    pub credential: Option<Arc<str>>,
}

/// Credentials that change (OAuth tokens) or sign each request (iFlow).
pub trait Credentials: Send + Sync {
    /// Headers (and base URL) for the next request; refreshes ahead of expiry when needed.
    fn authorize(&self) -> BoxFuture<Result<Authorization>>;

    /// The upstream rejected `credential`; refresh it. `true` when one retry may succeed.
    fn rejected(&self, credential: Option<Arc<str>>) -> BoxFuture<Result<bool>>;

    /// Makes sure the next `authorize` will succeed without network work (a token refreshed
    /// ahead of time), run before a scheduled call as its `authentication` stage. By default it
    /// authorizes once and drops the result.
    fn prepare(&self) -> BoxFuture<Result<()>> {
        let auth = self.authorize();
        Box::pin(async move { auth.await.map(|_| ()) })
    }
}

/// Vendor rules layered over the OpenAI protocol. Every method has the OpenAI behaviour as its
/// default.
pub trait Quirks: Send + Sync {
    /// Adjusts a request before it is serialized (vendor-required fields).
    fn fix_request(&self, _req: &mut ChatRequest) {}

    /// A vendor-specific reading of an HTTP error (quota 403s that are rate limits, ...);
    /// `None` falls back to the generic mapping.
    fn classify_error(&self, _status: u16, _headers: &HeaderMap, _body: &[u8]) -> Option<Error> {
        None
    }

    /// Whether this error answer means the credential was refused (refresh and retry once).
    fn is_credential_rejection(&self, status: u16, _body: &[u8]) -> bool {
        status == 401
    }

    /// An error carried in a successful (HTTP 200) body, such as iFlow's `{status, msg}`.
    fn business_error(&self, _body: &Value) -> Option<Error> {
        None
    }

    /// A failure reported by a vendor finish reason in a stream chunk (such as `network_error`
    /// or `error_finish`); `None` leaves it to the generic check. Only chunks with a finish
    /// reason are shown.
    fn stream_failure(&self, _chunk: &ChatChunk) -> Option<Error> {
        None
    }
}
