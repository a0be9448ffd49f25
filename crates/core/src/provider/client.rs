//! One reqwest client (one connection pool) per distinct transport setting, shared by every
//! provider in the process, so that providers pointing at one host reuse connections.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use super::config::HttpVersion;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    pub connect_timeout: Duration,
    pub http_version: HttpVersion,
}

static CLIENTS: LazyLock<Mutex<HashMap<ClientKey, reqwest::Client>>> = LazyLock::new(Default::default);

pub(crate) fn shared_client(key: ClientKey) -> Result<reqwest::Client> {
    let mut clients = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = clients.get(&key) {
        return Ok(c.clone());
    }
    let mut b = reqwest::Client::builder()
        .connect_timeout(key.connect_timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256);
    b = match key.http_version {
        HttpVersion::Auto => b,
        HttpVersion::Http1 => b.http1_only(),
        HttpVersion::Http2 => b.http2_prior_knowledge(),
    };
    let client = b.build().map_err(|e| Error::Internal { message: format!("could not build the HTTP client: {e}") })?;
    clients.insert(key, client.clone());
    Ok(client)
}
