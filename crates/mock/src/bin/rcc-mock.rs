//! `rcc-mock [--port N] [--api-key K]... [--model M]... [--watch-stdin]`
//!
//! Serves the mock upstream on 127.0.0.1 and prints one JSON line with its address:
//! `{"port":…,"url":"http://127.0.0.1:…","openaiBase":"…/v1","dashscopeBase":"…/compatible-mode/v1",
//! "iflowBase":"…/iflow/v1","blackholePort":…}`. `url` is also the Qwen OAuth base; the mock
//! is driven over HTTP with `POST /__mock/...` (see the `control` module).
//! Stops on SIGINT/SIGTERM, and with `--watch-stdin` also when its standard input closes, so
//! a parent that dies cannot leave it running.

use std::io::{Read, Write};

use rcc_mock::{MockConfig, MockServer};

fn parse_args() -> Result<(MockConfig, bool), String> {
    let mut cfg = MockConfig::default();
    let mut watch_stdin = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--port" => cfg.port = value("--port")?.parse().map_err(|_| "--port needs a number".to_string())?,
            "--api-key" => cfg.api_keys.push(value("--api-key")?),
            "--model" => cfg.models.push(value("--model")?),
            "--watch-stdin" => watch_stdin = true,
            "--help" | "-h" => return Err("usage: rcc-mock [--port N] [--api-key K]... [--model M]... [--watch-stdin]".into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((cfg, watch_stdin))
}

fn main() {
    let (cfg, watch_stdin) = match parse_args() {
        Ok(v) => v,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async move {
        let server = match MockServer::start(cfg).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("rcc-mock: cannot listen: {e}");
                std::process::exit(1);
            }
        };
        let line = serde_json::json!({
            "port": server.port(), "url": server.url(), "openaiBase": format!("{}/v1", server.url()),
            "dashscopeBase": server.dashscope_base(), "iflowBase": server.iflow_base(),
            "blackholePort": server.blackhole_port(),
        });
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        let (stdin_closed_tx, stdin_closed) = tokio::sync::oneshot::channel::<()>();
        if watch_stdin {
            std::thread::spawn(move || {
                let mut sink = [0u8; 256];
                let mut stdin = std::io::stdin();
                while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
                let _ = stdin_closed_tx.send(());
            });
        } else {
            std::mem::forget(stdin_closed_tx);
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = stdin_closed => {}
        }
        server.shutdown().await;
    });
}
