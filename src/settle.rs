//! Settles promises created on the JS thread from any thread, through ONE threadsafe function
//! per JS thread, in batches.
//!
//! A napi-rs `async fn` creates a threadsafe function (a libuv handle, a queue, an async
//! resource) for every call; with 100,000 requests waiting in a queue that is most of their
//! memory, and creating it is a measurable part of each call. Here a call creates only its
//! promise (`napi_create_promise`); its outcome is pushed on a shared list from whatever
//! thread finished it, and one threadsafe-function call drains everything that accumulated.
//!
//! The threadsafe function is unreferenced while no promise is pending, so an idle scheduler
//! never keeps Node alive, and referenced while any is (a pending request keeps the process
//! alive, as a pending `fetch` does).
//!
//! Events for JS (`JsCallback`: a scheduler's `requestFailed`, a provider's
//! `authenticationRequired`, ...) travel on the same queue, so they reach JS in the order they
//! happened relative to the promises: an event emitted before a call failed is seen before its
//! rejection. (Separate threadsafe functions give no such order: libuv drains the older one
//! first.)
//!
//! Wake-ups are coalesced when promises live long: when the typical promise has waited
//! [`COALESCE_WHEN_WAITING`] or more (long upstream calls, or a saturated scheduler), the first
//! outcome after a drain wakes the JS thread one timer tick later (about a millisecond, under
//! a tenth of the wait) instead of at once, and everything that completed meanwhile is settled
//! in the same wake-up. Each wake-up of the JS thread costs a context switch, libuv's and
//! node's bookkeeping and a microtask checkpoint; under load that was ~13 % of the CPU of a
//! request (BENCHMARKS.md). With short waits (a fast upstream at low concurrency, a stream's
//! next batch) every outcome still wakes it at once.
//!
//! A promise resolves with the outcome's JSON already parsed (`JSON.parse`, called from here;
//! or with the text itself: a stream's batches, `settle_text`) and rejects with the error JS's
//! factory builds (`setErrorFactory`: the exported error classes), so JS hands the promise to
//! its caller as is: no `.then` per call.

use std::cell::OnceCell;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use napi::bindgen_prelude::PromiseRaw;
use napi::{check_status, sys, Env};

/// What a settled promise receives: JSON text to resolve with (parsed), or an error message
/// to reject with (through the error factory).
pub type Outcome = Result<String, String>;

/// Like [`Outcome`], but resolving with the text itself (`None`: `null`), not parsed.
pub type TextOutcome = Result<Option<String>, String>;

/// Wake-ups are coalesced while the typical promise waits at least this long (see the module
/// comment); the delay is one tick of the tokio timer, so it stays under a tenth of the wait.
const COALESCE_WHEN_WAITING: Duration = Duration::from_millis(10);

/// How long a coalesced wake-up waits: rounded up to the timer's next tick (1 ms).
const COALESCE_DELAY: Duration = Duration::from_micros(500);

/// A promise's resolver, created on the JS thread; only the JS thread may use it.
pub struct Deferred(sys::napi_deferred, Instant);

// The raw deferred is only touched on the JS thread (in `drain`); other threads carry it.
unsafe impl Send for Deferred {}

/// What the JS thread has to do, in order.
enum Item {
    Settle(Deferred, Settlement),
    /// Call a `JsCallback`'s function with `(name, payload)`.
    Call(sys::napi_ref, String, String),
    /// A `JsCallback` was dropped: delete its reference.
    Release(sys::napi_ref),
}

// The raw handles in `Item` are only used on the JS thread (in `drain`).
unsafe impl Send for Item {}

pub struct Settler {
    tsfn: sys::napi_threadsafe_function,
    /// What is waiting for the JS thread; `None` once the threadsafe function is gone (the
    /// environment was torn down): later items are dropped, never sent to a freed function.
    ready: Mutex<Option<Vec<Item>>>,
    /// The threadsafe function may be called (false once it is being destroyed). Calls hold
    /// it for reading, so `closed` waits for a call in progress; a separate lock from `ready`
    /// because a call wakes the JS thread (a syscall, and node's own lock): under `ready` it
    /// would keep `drain` and the other threads' pushes waiting.
    callable: RwLock<bool>,
    /// A drain call is queued on the threadsafe function.
    scheduled: AtomicBool,
    /// Promises created and not yet settled (touched on the JS thread only).
    pending: std::cell::Cell<usize>,
    /// How long promises typically wait before they are settled, in µs: an exponentially
    /// weighted mean updated by `drain`, read by `push` to decide whether to coalesce.
    typical_wait_us: AtomicU64,
    /// `JSON.parse`, and JS's `(message) => Error` (JS thread only).
    json_parse: std::cell::Cell<sys::napi_ref>,
    error_factory: std::cell::Cell<sys::napi_ref>,
}

// `tsfn` is thread-safe by contract; `pending` is only used on the JS thread.
unsafe impl Send for Settler {}
unsafe impl Sync for Settler {}

thread_local! {
    /// One settler per JS thread (main thread, each worker thread), leaked: it lives as long
    /// as the environment, and its threadsafe function is torn down with it.
    static SETTLER: OnceCell<&'static Settler> = const { OnceCell::new() };
}

impl Settler {
    /// This JS thread's settler.
    pub fn get(env: &Env) -> napi::Result<&'static Settler> {
        SETTLER.with(|cell| {
            if let Some(s) = cell.get() {
                return Ok(*s);
            }
            let s = Self::create(env)?;
            let _ = cell.set(s);
            Ok(s)
        })
    }

    fn create(env: &Env) -> napi::Result<&'static Settler> {
        let settler: &'static mut Settler = Box::leak(Box::new(Settler {
            tsfn: ptr::null_mut(),
            ready: Mutex::new(Some(Vec::new())),
            callable: RwLock::new(true),
            typical_wait_us: AtomicU64::new(0),
            scheduled: AtomicBool::new(false),
            pending: std::cell::Cell::new(0),
            json_parse: std::cell::Cell::new(ptr::null_mut()),
            error_factory: std::cell::Cell::new(ptr::null_mut()),
        }));
        settler.json_parse.set(json_parse_ref(env)?);
        let name = "rcc-pipeline settle";
        let mut resource_name = ptr::null_mut();
        check_status!(unsafe { sys::napi_create_string_utf8(env.raw(), name.as_ptr().cast(), name.len() as isize, &mut resource_name) })?;
        let mut tsfn = ptr::null_mut();
        check_status!(unsafe {
            sys::napi_create_threadsafe_function(
                env.raw(),
                ptr::null_mut(),
                ptr::null_mut(),
                resource_name,
                0,
                1,
                (settler as *mut Settler).cast(),
                Some(closed),
                (settler as *mut Settler).cast(),
                Some(drain),
                &mut tsfn,
            )
        })?;
        check_status!(unsafe { sys::napi_unref_threadsafe_function(env.raw(), tsfn) })?;
        settler.tsfn = tsfn;
        Ok(settler)
    }

    /// Rejections are built by `factory(message)` from now on (JS thread).
    pub fn set_error_factory(&self, env: &Env, factory: sys::napi_value) -> napi::Result<()> {
        let mut r = ptr::null_mut();
        check_status!(unsafe { sys::napi_create_reference(env.raw(), factory, 1, &mut r) })?;
        let old = self.error_factory.replace(r);
        if !old.is_null() {
            unsafe { sys::napi_delete_reference(env.raw(), old) };
        }
        Ok(())
    }

    /// A new pending promise and its resolver (JS thread).
    pub fn promise<'env, T>(&self, env: &'env Env) -> napi::Result<(Deferred, PromiseRaw<'env, T>)> {
        let mut deferred = ptr::null_mut();
        let mut promise = ptr::null_mut();
        check_status!(unsafe { sys::napi_create_promise(env.raw(), &mut deferred, &mut promise) })?;
        let n = self.pending.get();
        if n == 0 {
            check_status!(unsafe { sys::napi_ref_threadsafe_function(env.raw(), self.tsfn) })?;
        }
        self.pending.set(n + 1);
        Ok((Deferred(deferred, Instant::now()), PromiseRaw::new(env.raw(), promise)))
    }

    /// Settles `deferred` with `outcome` soon, on the JS thread (any thread).
    pub fn settle(&'static self, deferred: Deferred, outcome: Outcome) {
        self.push(Item::Settle(deferred, outcome.map_or_else(Settlement::Reject, Settlement::Parse)));
    }

    /// Settles `deferred` with `outcome`'s text as is soon, on the JS thread (any thread).
    pub fn settle_text(&'static self, deferred: Deferred, outcome: TextOutcome) {
        self.push(Item::Settle(deferred, outcome.map_or_else(Settlement::Reject, Settlement::Text)));
    }

    fn push(&'static self, item: Item) {
        let first = {
            let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
            let Some(items) = ready.as_mut() else { return };
            items.push(item);
            // A drain clears `scheduled` before it takes the list (under `ready`), so an item
            // pushed while it is set is taken by the drain of the call that set it.
            !self.scheduled.swap(true, Ordering::AcqRel)
        };
        if !first {
            return;
        }
        if self.typical_wait_us.load(Ordering::Relaxed) >= COALESCE_WHEN_WAITING.as_micros() as u64 {
            // On a runtime thread (where outcomes come from), wake it a tick later. The guard
            // wakes it when the task ends, or is dropped unrun (the runtime shutting down).
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let guard = WakeOnDrop(self);
                rt.spawn(async move {
                    tokio::time::sleep(COALESCE_DELAY).await;
                    drop(guard);
                });
                return;
            }
        }
        self.wake();
    }

    /// Asks for a drain on the JS thread.
    fn wake(&self) {
        // Under `callable`, so that `closed` cannot free the function meanwhile. Non-blocking
        // on an unbounded queue: fails only while the environment is closing, when nobody is
        // left to receive the outcome.
        let callable = self.callable.read().unwrap_or_else(|p| p.into_inner());
        if *callable {
            unsafe { sys::napi_call_threadsafe_function(self.tsfn, ptr::null_mut(), sys::ThreadsafeFunctionCallMode::nonblocking) };
        }
    }

    /// Folds the wait of a promise just settled into `typical_wait_us` (JS thread).
    fn record_wait(&self, waited: Duration) {
        let sample = waited.as_micros().min(u64::MAX as u128) as u64;
        let mean = self.typical_wait_us.load(Ordering::Relaxed);
        // Weight 1/8: a change of load shows within a few dozen settlements.
        let next = mean - mean / 8 + sample / 8;
        self.typical_wait_us.store(next, Ordering::Relaxed);
    }
}

/// Wakes the JS thread when dropped (see `Settler::push`).
struct WakeOnDrop(&'static Settler);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.0.wake();
    }
}

/// The threadsafe function is being destroyed (environment teardown): stop sending to it.
unsafe extern "C" fn closed(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    let settler = unsafe { &*(data as *const Settler) };
    *settler.callable.write().unwrap_or_else(|p| p.into_inner()) = false;
    *settler.ready.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

/// The threadsafe function's callback (JS thread): settles everything that is ready.
unsafe extern "C" fn drain(env: sys::napi_env, _js_callback: sys::napi_value, context: *mut c_void, _data: *mut c_void) {
    let settler = unsafe { &*(context as *const Settler) };
    // Cleared before taking the list: an outcome pushed after this schedules another drain.
    settler.scheduled.store(false, Ordering::Release);
    let ready = settler.ready.lock().unwrap_or_else(|p| p.into_inner()).as_mut().map(std::mem::take).unwrap_or_default();
    if env.is_null() {
        return; // the environment is being torn down
    }
    let mut count = 0;
    let now = Instant::now();
    for item in ready {
        match item {
            Item::Settle(deferred, how) => {
                count += 1;
                settler.record_wait(now.saturating_duration_since(deferred.1));
                unsafe { settle_one(env, settler, deferred, how) };
            }
            Item::Call(func, name, payload) => unsafe { call_back(env, func, &name, &payload) },
            Item::Release(func) => unsafe {
                sys::napi_delete_reference(env, func);
            },
        }
    }
    let left = settler.pending.get().saturating_sub(count);
    settler.pending.set(left);
    if left == 0 {
        unsafe { sys::napi_unref_threadsafe_function(env, settler.tsfn) };
    }
}

/// A reference to the global `JSON.parse`.
fn json_parse_ref(env: &Env) -> napi::Result<sys::napi_ref> {
    let raw = env.raw();
    let (mut global, mut json, mut parse, mut r) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    check_status!(unsafe { sys::napi_get_global(raw, &mut global) })?;
    check_status!(unsafe { sys::napi_get_named_property(raw, global, c"JSON".as_ptr(), &mut json) })?;
    check_status!(unsafe { sys::napi_get_named_property(raw, json, c"parse".as_ptr(), &mut parse) })?;
    check_status!(unsafe { sys::napi_create_reference(raw, parse, 1, &mut r) })?;
    Ok(r)
}

/// Calls the function behind `r` with one argument; the result, or the exception it threw.
unsafe fn call(env: sys::napi_env, r: sys::napi_ref, arg: sys::napi_value) -> Result<sys::napi_value, sys::napi_value> {
    let (mut f, mut undefined, mut out) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    unsafe {
        sys::napi_get_reference_value(env, r, &mut f);
        sys::napi_get_undefined(env, &mut undefined);
        if sys::napi_call_function(env, undefined, f, 1, &arg, &mut out) == sys::Status::napi_ok {
            return Ok(out);
        }
        let mut exception = ptr::null_mut();
        sys::napi_get_and_clear_last_exception(env, &mut exception);
        Err(exception)
    }
}

unsafe fn string(env: sys::napi_env, text: &str) -> sys::napi_value {
    let mut value = ptr::null_mut();
    unsafe { sys::napi_create_string_utf8(env, text.as_ptr().cast(), text.len() as isize, &mut value) };
    value
}

/// Calls a `JsCallback`'s function; a throw in it is an uncaught exception, as in any callback.
unsafe fn call_back(env: sys::napi_env, func: sys::napi_ref, name: &str, payload: &str) {
    let mut scope = ptr::null_mut();
    unsafe { sys::napi_open_handle_scope(env, &mut scope) };
    let (mut f, mut undefined, mut out) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    unsafe {
        sys::napi_get_reference_value(env, func, &mut f);
        sys::napi_get_undefined(env, &mut undefined);
        let args = [string(env, name), string(env, payload)];
        // `napi_pending_exception`: the function threw. Any other failure means JS cannot run
        // any more (the environment is shutting down): the event has nobody to reach.
        if !f.is_null() && sys::napi_call_function(env, undefined, f, 2, args.as_ptr(), &mut out) == sys::Status::napi_pending_exception {
            let mut exception = ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env, &mut exception);
            sys::napi_fatal_exception(env, exception);
        }
        sys::napi_close_handle_scope(env, scope);
    }
}

/// How one promise is settled.
enum Settlement {
    /// Resolve with `JSON.parse(text)`.
    Parse(String),
    /// Resolve with the text as a string (`None`: `null`).
    Text(Option<String>),
    /// Reject with the error the factory builds from the message.
    Reject(String),
}

unsafe fn settle_one(env: sys::napi_env, settler: &Settler, deferred: Deferred, how: Settlement) {
    let mut scope = ptr::null_mut();
    unsafe { sys::napi_open_handle_scope(env, &mut scope) };
    let settled = match how {
        Settlement::Parse(json) => unsafe { call(env, settler.json_parse.get(), string(env, &json)) },
        Settlement::Text(Some(text)) => Ok(unsafe { string(env, &text) }),
        Settlement::Text(None) => {
            let mut null = ptr::null_mut();
            unsafe { sys::napi_get_null(env, &mut null) };
            Ok(null)
        }
        Settlement::Reject(message) => {
            let value = unsafe { string(env, &message) };
            let factory = settler.error_factory.get();
            if factory.is_null() {
                let mut error = ptr::null_mut();
                unsafe { sys::napi_create_error(env, ptr::null_mut(), value, &mut error) };
                Err(error)
            } else {
                // The factory's result is the rejection, whether it returned or threw it.
                match unsafe { call(env, factory, value) } {
                    Ok(e) | Err(e) => Err(e),
                }
            }
        }
    };
    match settled {
        Ok(v) => unsafe { sys::napi_resolve_deferred(env, deferred.0, v) },
        Err(e) => unsafe { sys::napi_reject_deferred(env, deferred.0, e) },
    };
    unsafe { sys::napi_close_handle_scope(env, scope) };
}

/// Registers `(message) => Error`, which builds the rejections of settled promises (the
/// exported error classes, in the caller's realm). index.js calls it once per JS thread.
#[napi_derive::napi(ts_args_type = "factory: (message: string) => Error")]
pub fn set_error_factory(env: &Env, factory: napi::bindgen_prelude::Unknown) -> napi::Result<()> {
    use napi::JsValue;
    Settler::get(env)?.set_error_factory(env, factory.raw())
}

/// A JS function `(name, payloadJson) => void` that any thread may call; calls run on the JS
/// thread in order with the settler's promises. Created on the JS thread; dropping it (on any
/// thread) releases the function there, after the calls already queued.
pub struct JsCallback {
    settler: &'static Settler,
    func: sys::napi_ref,
}

// `func` is only dereferenced on the JS thread (in `drain`).
unsafe impl Send for JsCallback {}
unsafe impl Sync for JsCallback {}

impl JsCallback {
    pub fn new(env: &Env, func: napi::bindgen_prelude::Unknown) -> napi::Result<Self> {
        use napi::JsValue;
        let mut r = ptr::null_mut();
        check_status!(unsafe { sys::napi_create_reference(env.raw(), func.raw(), 1, &mut r) })?;
        Ok(JsCallback { settler: Settler::get(env)?, func: r })
    }

    pub fn call(&self, name: &str, payload: String) {
        self.settler.push(Item::Call(self.func, name.to_string(), payload));
    }
}

impl Drop for JsCallback {
    fn drop(&mut self) {
        self.settler.push(Item::Release(self.func));
    }
}
