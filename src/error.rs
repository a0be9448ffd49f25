//! Core errors cross into JS as a plain Error whose message is a marker plus the error's JSON
//! payload. `index.js` recognises the marker and builds the exported class (`RateLimitError`,
//! ...) in the caller's realm, which keeps `instanceof` working inside jest.

use napi::Status;
use rcc_core::Error;

/// Must match `NATIVE_ERROR_MARKER` in index.js.
const MARKER: &str = "RCC_NATIVE_ERROR:";

pub fn to_napi(e: Error, provider_name: Option<&str>) -> napi::Error {
    let mut payload = e.to_payload();
    if let Some(name) = provider_name {
        payload.insert("providerName".into(), name.into());
    }
    payload_error(payload)
}

/// An error payload (already carrying its context) as the JS error.
pub fn payload_error(payload: serde_json::Map<String, serde_json::Value>) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("{MARKER}{}", serde_json::Value::Object(payload)))
}

/// Options objects arrive as JSON text from index.js; a broken one is a defect of the wrapper,
/// but it is still reported as a typed error rather than a panic.
pub fn parse_json(text: &str, what: &str) -> Result<serde_json::Value, napi::Error> {
    serde_json::from_str(text).map_err(|e| to_napi(Error::validation(what, format!("{what} is not valid JSON: {e}")), None))
}
