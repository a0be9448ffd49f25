//! `NativeCall`: one cancellable native call. JS creates it, wires its AbortSignal to
//! `cancel()`, then awaits `result()` (JSON text).

use std::sync::Mutex;

use napi_derive::napi;
use rcc_core::schedule::BoxFuture;
use tokio_util::sync::CancellationToken;

#[napi]
pub struct NativeCall {
    work: Mutex<Option<BoxFuture<napi::Result<String>>>>,
    cancel: CancellationToken,
}

impl NativeCall {
    /// `work` must stop (with a CANCELLED error) when `cancel` fires.
    pub fn new(work: BoxFuture<napi::Result<String>>, cancel: CancellationToken) -> Self {
        NativeCall { work: Mutex::new(Some(work)), cancel }
    }
}

#[napi]
impl NativeCall {
    /// Runs the call once.
    #[napi]
    pub async fn result(&self) -> napi::Result<String> {
        let work = self.work.lock().unwrap_or_else(|p| p.into_inner()).take();
        match work {
            Some(w) => w.await,
            None => Err(napi::Error::from_reason("NativeCall.result() may be awaited only once")),
        }
    }

    #[napi]
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}
