//! Routing-table expansion (RCC v4): a user config names providers and, for each virtual
//! model, the provider × model targets it routes to; the table lists every pipeline the
//! server must create up front (one per provider × target model × API key) and, per virtual
//! model, the route entries a router picks among.
//!
//! Accepted config (both `routing` forms may be mixed; a route named `rules` is therefore
//! only possible in the seed form):
//!
//! ```json
//! { "providers": { "lmstudio": { "endpoint": "http://localhost:1234/v1", "apiKeys": ["k1", "k2"],
//!                                "type": "openai", "models": ["llama-3.1-8b"], "maxTokens": 4096 } },
//!   "routing": { "rules": [ { "name": "default", "provider": "lmstudio", "model": "llama-3.1-8b", "weight": 2 } ],
//!                "coding": [ { "provider": "lmstudio", "model": "llama-3.1-8b" } ] },
//!   "defaultRoute": "default", "fallback": "none" }
//! ```
//!
//! The table (keys in this order):
//!
//! ```json
//! { "routes": { "default": [ { "routeId": "route-default-lmstudio-llama-3.1-8b-0", "routeName": "default",
//!                              "virtualModel": "default", "provider": "lmstudio", "targetModel": "llama-3.1-8b",
//!                              "apiKeyIndex": 0, "pipelineId": "lmstudio-llama-3.1-8b-0", "weight": 2,
//!                              "isActive": true, "health": "healthy" }, … ] },
//!   "pipelines": { "lmstudio-llama-3.1-8b-0": { "pipelineId": "lmstudio-llama-3.1-8b-0", "provider": "lmstudio",
//!                  "type": "openai", "endpoint": "http://localhost:1234/v1", "targetModel": "llama-3.1-8b",
//!                  "apiKeyIndex": 0, "hasApiKey": true, "virtualModels": ["default", "coding"],
//!                  "providerConfig": { "maxTokens": 4096 } }, … },
//!   "defaultRoute": "default", "fallback": "none" }
//! ```
//!
//! API keys never enter the table; `api_key` looks one up by provider and `apiKeyIndex`.

mod table;

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

pub use table::{api_key, build_routing_table};

/// Reads a routing config file and expands it. An unreadable file or broken JSON is a
/// validation error naming the file (with the OS reason, or the line and column); a bad
/// config is reported by JSON path, as by `build_routing_table`.
pub fn build_routing_table_from_file(path: &Path) -> Result<Value> {
    build_routing_table(&read_config(path)?)
}

fn read_config(path: &Path) -> Result<Value> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::validation(&shown, format!("cannot read routing config {shown}: {e}")))?;
    // Editors on Windows may save a byte-order mark, which JSON does not allow.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    // serde_json's message ends with "at line L column C".
    serde_json::from_str(text).map_err(|e| Error::validation(&shown, format!("routing config {shown} is not valid JSON: {e}")))
}

#[cfg(test)]
mod tests;
