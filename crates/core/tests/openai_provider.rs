//! The OpenAI-compatible provider against the mock upstream over real loopback HTTP.

use std::time::{Duration, Instant};

use rcc_core::model::ChatRequest;
use rcc_core::provider::{CallOptions, HealthStatus, OpenAICompatibleProvider, ProviderConfig, TimeoutsOverride};
use rcc_core::{Error, TimeoutPhase};
use rcc_mock::{MockConfig, MockServer};

async fn mock() -> MockServer {
    MockServer::start(MockConfig { api_keys: vec!["sk-test-secret".into()], ..Default::default() }).await.unwrap()
}

fn provider(m: &MockServer, extra: serde_json::Value) -> OpenAICompatibleProvider {
    let mut cfg = serde_json::json!({"name": "mock", "endpoint": format!("{}/v1", m.url()), "apiKey": "sk-test-secret"});
    cfg.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    OpenAICompatibleProvider::new(ProviderConfig::from_json(&cfg.to_string()).unwrap()).unwrap()
}

fn request(scenario: &str, stream: bool) -> ChatRequest {
    let model = if scenario.is_empty() { "gpt-4o-mini".to_string() } else { format!("mock:{scenario}") };
    ChatRequest::from_json(
        &serde_json::json!({"model": model, "stream": stream, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "ping"}], "metadata": {"trace": "t1"}})
        .to_string(),
    )
    .unwrap()
}

async fn collect(p: &OpenAICompatibleProvider, req: ChatRequest, opts: CallOptions) -> (Vec<rcc_core::model::ChatChunk>, Option<Error>) {
    let mut s = p.stream_chat(req, opts).unwrap();
    let mut chunks = Vec::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(c) => chunks.push(c),
            Err(e) => return (chunks, Some(e)),
        }
    }
    (chunks, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_returns_a_standard_completion_and_sends_unknown_fields_through() {
    let m = mock().await;
    let p = provider(&m, serde_json::json!({}));
    let r = p.chat(request("", false), CallOptions::default()).await.unwrap();
    assert_eq!(r.object, "chat.completion");
    assert_eq!(r.choices[0].message.text(), "Hello from the mock upstream! You said: ping");
    assert_eq!(r.usage.as_ref().unwrap().total_tokens, r.usage.as_ref().unwrap().prompt_tokens + r.usage.as_ref().unwrap().completion_tokens);
    let sent = &m.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.body["stream"], false);
    assert_eq!(sent.body["metadata"]["trace"], "t1");
    assert_eq!(sent.headers["authorization"], "Bearer sk-test-secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_yields_chunks_then_usage() {
    let m = mock().await;
    let p = provider(&m, serde_json::json!({}));
    let (chunks, err) = collect(&p, request("chunks=5", true), CallOptions::default()).await;
    assert!(err.is_none(), "{err:?}");
    let text: String = chunks.iter().filter_map(|c| c.content()).collect();
    assert_eq!(text, "Hello from the mock upstream!");
    assert_eq!(chunks.iter().rev().nth(1).unwrap().choices[0].finish_reason.as_deref(), Some("stop"));
    assert!(chunks.last().unwrap().choices.is_empty());
    assert_eq!(chunks.last().unwrap().usage.clone().flatten().unwrap().completion_tokens, 5);
    assert_eq!(m.requests()[0].headers["accept"], "text/event-stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_map_to_typed_errors() {
    let m = mock().await;
    let p = provider(&m, serde_json::json!({}));
    let e = p.chat(request("status=429,retry-after-ms=1500", false), CallOptions::default()).await.unwrap_err();
    assert_eq!((e.code(), e.retry_after_ms()), ("RATE_LIMIT_ERROR", Some(1500)));
    let e = p.chat(request("status=503", false), CallOptions::default()).await.unwrap_err();
    assert_eq!((e.code(), e.status()), ("PROVIDER_ERROR", Some(503)));
    let bad_key = {
        let cfg = serde_json::json!({"name": "mock", "endpoint": format!("{}/v1", m.url()), "apiKey": "sk-wrong-key"});
        OpenAICompatibleProvider::new(ProviderConfig::from_json(&cfg.to_string()).unwrap()).unwrap()
    };
    let e = bad_key.chat(request("", false), CallOptions::default()).await.unwrap_err();
    assert_eq!(e.code(), "AUTHENTICATION_ERROR");
    assert!(!format!("{e:?}").contains("sk-wrong-key"));
    let (_, e) = collect(&p, request("status=500", true), CallOptions::default()).await;
    assert_eq!(e.unwrap().status(), Some(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_streams_are_errors_with_the_partial_response() {
    let m = mock().await;
    let p = provider(&m, serde_json::json!({}));
    for scenario in ["truncate-after=3", "malformed-after=3", "error-after=3", "chunk-delay=5,truncate-after=3"] {
        let (chunks, e) = collect(&p, request(scenario, true), CallOptions::default()).await;
        let e = e.unwrap_or_else(|| panic!("{scenario}: no error"));
        assert_eq!(chunks.len(), 3, "{scenario}");
        match e {
            Error::Stream { partial: Some(partial), .. } => {
                assert_eq!(partial["choices"][0]["message"]["content"], "Hello from", "{scenario}")
            }
            other => panic!("{scenario}: {other:?}"),
        }
    }
    // Finished (finish_reason seen) but no [DONE]: accepted.
    let (chunks, e) = collect(&p, request("no-done,chunks=2", true), CallOptions::default()).await;
    assert!(e.is_none() && chunks.len() == 5, "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_timeout_phase_fires_with_its_name() {
    let m = mock().await;
    let p = provider(&m, serde_json::json!({}));
    let t = |connect: Option<u64>, first_token: Option<u64>, idle: Option<u64>, total: Option<u64>| CallOptions {
        timeouts: TimeoutsOverride {
            connect: connect.map(Duration::from_millis),
            first_token: first_token.map(Duration::from_millis),
            idle: idle.map(Duration::from_millis),
            total: total.map(Duration::from_millis),
        },
        ..Default::default()
    };
    let phase = |e: Error| match e {
        Error::Timeout { phase, .. } => phase,
        other => panic!("not a timeout: {other:?}"),
    };
    let e = p.chat(request("latency=2000", false), t(None, Some(200), None, None)).await.unwrap_err();
    assert_eq!(phase(e), TimeoutPhase::FirstToken);
    let (c, e) = collect(&p, request("first-token-delay=2000", true), t(None, Some(200), None, None)).await;
    assert!(c.is_empty());
    assert_eq!(phase(e.unwrap()), TimeoutPhase::FirstToken);
    let (c, e) = collect(&p, request("stall-after=2", true), t(None, None, Some(200), None)).await;
    assert_eq!(c.len(), 2);
    assert_eq!(phase(e.unwrap()), TimeoutPhase::Idle);
    let (_, e) = collect(&p, request("chunk-delay=50,chunks=100", true), t(None, None, None, Some(300))).await;
    assert_eq!(phase(e.unwrap()), TimeoutPhase::Total);

    let hole = {
        let cfg = serde_json::json!({"name": "hole", "endpoint": format!("http://127.0.0.1:{}/v1", m.blackhole_port()),
            "timeouts": {"connect": 200}});
        OpenAICompatibleProvider::new(ProviderConfig::from_json(&cfg.to_string()).unwrap()).unwrap()
    };
    let started = Instant::now();
    let e = hole.chat(request("", false), CallOptions::default()).await.unwrap_err();
    assert_eq!(phase(e), TimeoutPhase::Connect);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_closes_the_upstream_stream() {
    let m = mock().await;
    let p = provider(&m, serde_json::json!({}));
    let mut s = p.stream_chat(request("chunk-delay=20,chunks=200", true), CallOptions::default()).unwrap();
    for _ in 0..3 {
        s.next().await.unwrap().unwrap();
    }
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(5);
    while m.stats().streams_cancelled == 0 {
        assert!(Instant::now() < deadline, "the mock never saw the stream close: {:?}", m.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let opts = CallOptions::default();
    let cancel = opts.cancel.clone();
    let call = tokio::spawn({
        let p = p.clone();
        async move { p.chat(request("latency=5000", false), opts).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    assert_eq!(call.await.unwrap().unwrap_err().code(), "CANCELLED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_when_configured_and_reset_is_a_connection_error() {
    let m = mock().await;
    let p = provider(&m, serde_json::json!({}));
    let e = p.chat(request("reset", false), CallOptions::default()).await.unwrap_err();
    assert_eq!(e.code(), "CONNECTION_ERROR", "{e:?}");
    assert!(e.retryable());
    let retrying = provider(&m, serde_json::json!({"maxRetries": 2}));
    m.reset();
    let e = retrying.chat(request("status=503,retry-after-ms=10", false), CallOptions::default()).await.unwrap_err();
    assert_eq!(e.status(), Some(503));
    assert_eq!(m.stats().chat_requests, 3, "maxRetries 2 = 3 attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_and_models_and_health() {
    let m = mock().await;
    let p = provider(&m, serde_json::json!({"httpVersion": "2"}));
    p.chat(request("", false), CallOptions::default()).await.unwrap();
    assert_eq!(m.requests()[0].http_version, "HTTP/2.0");
    let models = p.list_models(CallOptions::default()).await.unwrap();
    assert!(models.contains(&"qwen-turbo".to_string()));
    let h = p.health_check().await;
    assert_eq!(h.status, HealthStatus::Healthy);
    let hole = OpenAICompatibleProvider::new(
        ProviderConfig::from_json(&serde_json::json!({"name": "down", "endpoint": "http://127.0.0.1:9/v1", "timeouts": {"connect": 200}}).to_string()).unwrap(),
    )
    .unwrap();
    let h = hole.health_check().await;
    assert_eq!(h.status, HealthStatus::Unhealthy);
    assert!(h.error.is_some());
}

/// Chunks whose upstream text is forwarded as it is (the binding's fast path) say exactly what
/// the normalised typed chunk says; usage (serialised in its own shape) is not forwarded raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_chunk_text_equals_the_typed_chunk() {
    let m = mock().await;
    let p = provider(&m, serde_json::json!({}));
    let mut s = p.stream_chat(request("chunks=50", true), CallOptions::default()).unwrap();
    let (mut raw, mut typed) = (0, 0);
    while let Some(item) = s.next_item().await {
        let item = item.unwrap();
        match item.raw() {
            Some(text) => {
                raw += 1;
                let upstream: serde_json::Value = serde_json::from_str(text).unwrap();
                assert_eq!(upstream, serde_json::to_value(&*item.chunk()).unwrap());
                for field in ["id", "object", "created", "model", "choices"] {
                    assert!(upstream.get(field).is_some(), "{field} in {text}");
                }
                assert_eq!(upstream["object"], "chat.completion.chunk");
                let choice = &upstream["choices"][0];
                assert!(choice.get("index").is_some() && choice.get("delta").is_some() && choice.get("finish_reason").is_some(), "{text}");
            }
            None => {
                typed += 1;
                assert!(item.chunk().usage.clone().flatten().is_some(), "only the usage chunk is typed: {:?}", item.chunk());
            }
        }
    }
    assert_eq!((raw, typed), (1 + 50 + 1, 1));
}

/// Most chunks of a long stream repeat the one before but for their content and are not parsed
/// (see `chunk_template`): each still reads as what its text says, and the partial response
/// of a broken stream holds every content delta that arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_broken_stream_keeps_every_content_delta() {
    let m = mock().await;
    let p = provider(&m, serde_json::json!({}));
    let mut s = p.stream_chat(request("chunks=300,truncate-after=250", true), CallOptions::default()).unwrap();
    let (mut text, mut count) = (String::new(), 0);
    let e = loop {
        match s.next_item().await {
            Some(Ok(item)) => {
                let upstream: serde_json::Value = serde_json::from_str(item.raw().expect("forwarded as it is")).unwrap();
                let chunk = item.chunk();
                assert_eq!(upstream, serde_json::to_value(&*chunk).unwrap());
                text.push_str(chunk.content().unwrap_or_default());
                count += 1;
            }
            Some(Err(e)) => break e,
            None => panic!("the stream ended without its error"),
        }
    };
    assert_eq!(count, 250);
    assert!(text.len() > 250, "{text}");
    match e {
        Error::Stream { partial: Some(partial), .. } => assert_eq!(partial["choices"][0]["message"]["content"], text),
        other => panic!("{other:?}"),
    }
}

/// Serves one canned HTTP response (`body` in a single write) on a loopback port.
async fn one_shot_server(body: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        // The request: headers, then Content-Length bytes of body.
        loop {
            let n = sock.read(&mut buf).await.unwrap();
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                    .unwrap_or(0);
                if req.len() >= end + 4 + len {
                    break;
                }
            }
            if n == 0 {
                return;
            }
        }
        let head = format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
        sock.write_all(format!("{head}{body}").as_bytes()).await.unwrap();
        let _ = sock.shutdown().await;
    });
    format!("http://{addr}/v1")
}

/// Several events arrive in one read, with a broken one in the middle: the chunks before it
/// are delivered, then the typed stream error naming the event, with the partial response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_event_inside_one_read_is_a_typed_stream_error() {
    let chunk = |delta: &str, finish: &str| {
        format!(r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}]}}"#)
    };
    let events = [
        chunk(r#"{"role":"assistant","content":""}"#, "null"),
        chunk(r#"{"content":"Hel"}"#, "null"),
        chunk(r#"{"content":"lo"}"#, "null"),
        r#"{"id":"chatcmpl-1","choices":[{"delta":{"content":"bro"#.to_string(),
        chunk(r#"{"content":" never"}"#, "null"),
        chunk("{}", r#""stop""#),
        "[DONE]".to_string(),
    ];
    let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    let endpoint = one_shot_server(body).await;
    let cfg = serde_json::json!({"name": "canned", "endpoint": endpoint, "apiKey": "sk-canned-test-key", "maxRetries": 0});
    let p = OpenAICompatibleProvider::new(ProviderConfig::from_json(&cfg.to_string()).unwrap()).unwrap();
    let (chunks, e) = collect(&p, request("", true), CallOptions::default()).await;
    let text: String = chunks.iter().filter_map(|c| c.content()).collect();
    assert_eq!((chunks.len(), text.as_str()), (3, "Hello"));
    match e {
        Some(Error::Stream { message, partial: Some(partial) }) => {
            assert!(message.contains("malformed chunk in event 4"), "{message}");
            assert_eq!(partial["choices"][0]["message"]["content"], "Hello");
        }
        other => panic!("{other:?}"),
    }
}

/// What a 200 body means: a completion (typed straight from the text), an error envelope (a
/// typed error, not an empty completion), or neither (an error that says what is wrong).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_body_is_a_completion_or_the_error_it_reports() {
    let answer = |body: &'static str| async move {
        let endpoint = one_shot_server(body.to_string()).await;
        let cfg = serde_json::json!({"name": "canned", "endpoint": endpoint, "apiKey": "sk-canned-test-key", "maxRetries": 0});
        let p = OpenAICompatibleProvider::new(ProviderConfig::from_json(&cfg.to_string()).unwrap()).unwrap();
        p.chat(request("", false), CallOptions::default()).await
    };
    let completion = r#"{"id":"chatcmpl-9","object":"chat.completion","created":1700000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop","logprobs":null}],"error":null,"system_fingerprint":"fp"}"#;
    let r = answer(completion).await.unwrap();
    assert_eq!((r.id.as_str(), r.choices[0].message.text().as_str()), ("chatcmpl-9", "hi"));
    assert_eq!(serde_json::to_value(&r).unwrap(), serde_json::from_str::<serde_json::Value>(completion).unwrap());

    match answer(r#"{"error":{"message":"upstream overloaded","type":"server_error","code":"overloaded"}}"#).await {
        Err(e) => assert!(e.to_string().contains("upstream overloaded"), "{e}"),
        Ok(r) => panic!("an error envelope became a completion: {r:?}"),
    }
    // An `error` member next to `choices` does not make a completion an error.
    let r = answer(r#"{"error":{"message":"partial"},"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#).await.unwrap();
    assert_eq!(r.choices[0].message.text(), "ok");

    for (body, says) in [("{\"choices\":", "not JSON"), (r#"{"choices":{"index":0}}"#, "expected shape"), ("[1,2]", "expected shape")] {
        match answer(body).await {
            Err(e) => assert!(e.to_string().contains(says), "{body}: {e}"),
            Ok(r) => panic!("{body}: {r:?}"),
        }
    }
}
