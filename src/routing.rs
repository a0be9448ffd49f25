//! Routing-table expansion for JS: configs and tables cross as JSON text; the work is
//! `rcc_core::route`.

use napi_derive::napi;
use rcc_core::route;

use crate::error::{parse_json, to_napi};

/// Expands a routing config (JSON text) into the RoutingTable (JSON text).
#[napi]
pub fn build_routing_table(config_json: String) -> napi::Result<String> {
    let config = parse_json(&config_json, "config")?;
    let table = route::build_routing_table(&config).map_err(|e| to_napi(e, None))?;
    Ok(table.to_string())
}

/// Reads a routing config file and expands it.
#[napi]
pub fn build_routing_table_from_file(path: String) -> napi::Result<String> {
    let table = route::build_routing_table_from_file(std::path::Path::new(&path)).map_err(|e| to_napi(e, None))?;
    Ok(table.to_string())
}

/// The API key of `provider` at `index` in a routing config (JSON text), if any.
#[napi]
pub fn routing_api_key(config_json: String, provider: String, index: u32) -> napi::Result<Option<String>> {
    let config = parse_json(&config_json, "config")?;
    Ok(route::api_key(&config, &provider, index as usize).map(String::from))
}
