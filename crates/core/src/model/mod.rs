//! OpenAI chat request, response and stream-chunk types.
//!
//! Every struct keeps the fields it does not know in `extra` (serde `flatten`), so vendor
//! extensions such as `reasoning_content`, `metadata` or `extend_fields` survive a round trip.
//! Fields whose explicit `null` means something on the wire (`content`, `usage`) use
//! [`double_option`] so that `null` and "absent" stay distinct.

mod chunk;
pub(crate) mod de;
mod message;
mod request;
mod response;

pub use chunk::{ChatChunk, ChunkChoice, Delta};
pub use message::{ChatMessage, Content, ContentPart, FunctionCall, FunctionDef, ImageUrl, Tool, ToolCall, Usage};
pub use request::{ChatRequest, StreamOptions};
pub use response::{ChatResponse, Choice};

use serde_json::{Map, Value};

/// Unknown fields of an object, in their original order.
pub type Extra = Map<String, Value>;

/// `created` must be Unix seconds. Some upstreams (and the original package) send
/// milliseconds; anything that cannot be seconds before the year 5000 is treated as ms.
pub(crate) fn normalize_created(created: u64) -> u64 {
    const MAX_PLAUSIBLE_SECONDS: u64 = 95_617_584_000; // year 5000
    if created == 0 {
        now_secs()
    } else if created > MAX_PLAUSIBLE_SECONDS {
        created / 1000
    } else {
        created
    }
}

pub(crate) fn now_secs() -> u64 {
    crate::time::epoch_secs()
}

pub(crate) fn generated_id(prefix: &str) -> String {
    format!("{prefix}{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// serde helper keeping `"field": null` apart from a missing field:
/// `None` = absent, `Some(None)` = null, `Some(Some(v))` = a value.
pub mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }

    pub fn serialize<T, S>(v: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error>
    where
        T: Serialize,
        S: Serializer,
    {
        match v {
            Some(Some(x)) => x.serialize(s),
            _ => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests;
