//! The OAuth credential source end to end, with a fake token endpoint: single-flight refresh
//! inside a process and across processes (this binary spawns itself twice), refresh ahead of
//! expiry on tokio's paused clock, invalid_grant handling, and the credential file (modes,
//! atomic writes, corrupt files, legacy and iFlow formats).
//!
//! Everything sits in `mod auth_source` so `cargo test -p rcc-core auth` selects it.

mod auth_source {
    use std::fs;
    use std::io::Write as _;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use futures_util::future::BoxFuture;
    use rcc_core::provider::auth::{
        requires_reauthentication, AuthEvent, Clock, FormRequest, OAuthClient, OAuthCredentialSource, OAuthEndpoints, ReauthReason,
        RefreshOrigin, SourceOptions, StoreFormat, SystemClock, TokenSet, TokenStore, TokenTransport, TokioClock, TransportResponse,
        INVALID_GRANT,
    };
    use rcc_core::Error;
    use serde_json::{json, Value};

    /// A token endpoint that only refreshes: counts the calls, optionally appends a line per
    /// call to a file shared between processes, and takes `delay` (tokio time) to answer.
    struct FakeTokenEndpoint {
        label: String,
        refreshes: AtomicUsize,
        delay: Duration,
        counter_file: Option<PathBuf>,
        reject: AtomicBool,
        seen_refresh_tokens: Mutex<Vec<String>>,
    }

    impl FakeTokenEndpoint {
        fn new(label: &str, delay: Duration) -> Arc<Self> {
            Self::with_counter(label, delay, None)
        }

        fn with_counter(label: &str, delay: Duration, counter_file: Option<PathBuf>) -> Arc<Self> {
            Arc::new(FakeTokenEndpoint {
                label: label.into(),
                refreshes: AtomicUsize::new(0),
                delay,
                counter_file,
                reject: AtomicBool::new(false),
                seen_refresh_tokens: Mutex::default(),
            })
        }

        fn count(&self) -> usize {
            self.refreshes.load(Ordering::SeqCst)
        }
    }

    impl TokenTransport for FakeTokenEndpoint {
        fn post_form(&self, req: FormRequest) -> BoxFuture<'_, rcc_core::Result<TransportResponse>> {
            Box::pin(async move {
                assert_eq!(req.param("grant_type"), Some("refresh_token"), "{req:?}");
                self.seen_refresh_tokens.lock().unwrap().push(req.param("refresh_token").unwrap_or_default().to_string());
                let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
                if let Some(path) = &self.counter_file {
                    let mut f = fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
                    writeln!(f, "{} {}", self.label, std::process::id()).unwrap();
                }
                tokio::time::sleep(self.delay).await;
                if self.reject.load(Ordering::SeqCst) {
                    return Ok(TransportResponse::json(
                        400,
                        &json!({"error": "invalid_grant", "error_description": "refresh token expired"}),
                    ));
                }
                Ok(TransportResponse::json(
                    200,
                    &json!({"access_token": format!("at-{}-{n}", self.label), "refresh_token": format!("rt-{}-{n}", self.label),
                            "token_type": "Bearer", "expires_in": 3600, "resource_url": "portal.qwen.ai"}),
                ))
            })
        }
    }

    type Events = Arc<Mutex<Vec<AuthEvent>>>;

    fn source(path: &Path, fake: Arc<FakeTokenEndpoint>, clock: Arc<dyn Clock>) -> (OAuthCredentialSource, Events) {
        source_with(TokenStore::new(path), fake, clock)
    }

    fn source_with(store: TokenStore, fake: Arc<FakeTokenEndpoint>, clock: Arc<dyn Clock>) -> (OAuthCredentialSource, Events) {
        let events: Events = Arc::default();
        let sink = events.clone();
        let client = OAuthClient::with_transport(OAuthEndpoints::qwen_with_base("http://127.0.0.1:9"), fake).unwrap().with_clock(clock);
        let options = SourceOptions {
            refresh_margin: Duration::from_secs(30),
            events: Some(Arc::new(move |e: &AuthEvent| sink.lock().unwrap().push(e.clone()))),
        };
        (OAuthCredentialSource::with_options(client, store, options), events)
    }

    /// A qwen-code credential file expiring at `expiry_ms`.
    fn write_qwen_file(path: &Path, access: &str, refresh: &str, expiry_ms: u64) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let v = json!({"access_token": access, "refresh_token": refresh, "token_type": "Bearer", "resource_url": "portal.qwen.ai", "expiry_date": expiry_ms});
        fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }

    fn read_json(path: &Path) -> Value {
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[tokio::test(start_paused = true)]
    async fn one_refresh_for_100_concurrent_callers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth_creds.json");
        let clock = Arc::new(TokioClock::new());
        write_qwen_file(&path, "at-old", "rt-old", clock.now_ms() - 1000);
        let fake = FakeTokenEndpoint::new("net", Duration::from_millis(200));
        let (src, events) = source(&path, fake.clone(), clock);
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let src = src.clone();
                tokio::spawn(async move { src.access_token().await })
            })
            .collect();
        let mut tokens = Vec::new();
        for t in tasks {
            tokens.push(t.await.unwrap().unwrap().access_token);
        }
        assert_eq!(fake.count(), 1);
        assert!(tokens.iter().all(|t| t == "at-net-1"), "{tokens:?}");
        assert_eq!(*fake.seen_refresh_tokens.lock().unwrap(), ["rt-old"]);
        let file = read_json(&path);
        assert_eq!((file["access_token"].as_str(), file["refresh_token"].as_str()), (Some("at-net-1"), Some("rt-net-1")));
        let refreshed: Vec<_> = events.lock().unwrap().iter().filter(|e| matches!(e, AuthEvent::TokenRefreshed { .. })).cloned().collect();
        assert!(matches!(refreshed[..], [AuthEvent::TokenRefreshed { origin: RefreshOrigin::Network, .. }]), "{refreshed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn one_refresh_for_100_concurrent_401s() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth_creds.json");
        let clock = Arc::new(TokioClock::new());
        // Not expired: the upstream rejects it anyway (revoked).
        write_qwen_file(&path, "at-old", "rt-old", clock.now_ms() + 3_600_000);
        let fake = FakeTokenEndpoint::new("net", Duration::from_millis(200));
        let (src, _) = source(&path, fake.clone(), clock);
        assert_eq!(src.access_token().await.unwrap().access_token, "at-old");
        assert_eq!(fake.count(), 0);
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let src = src.clone();
                tokio::spawn(async move { src.invalidate_and_refresh("at-old").await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().access_token, "at-net-1");
        }
        assert_eq!(fake.count(), 1);
        // A late 401 for the old token gets the new one without another refresh; a 401 for the
        // new one refreshes again.
        assert_eq!(src.invalidate_and_refresh("at-old").await.unwrap().access_token, "at-net-1");
        assert_eq!(fake.count(), 1);
        assert_eq!(src.invalidate_and_refresh("at-net-1").await.unwrap().access_token, "at-net-2");
        assert_eq!(fake.count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_ahead_of_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth_creds.json");
        let clock = Arc::new(TokioClock::new());
        write_qwen_file(&path, "at-old", "rt-old", clock.now_ms() + 60_000);
        let fake = FakeTokenEndpoint::new("net", Duration::ZERO);
        let (src, _) = source(&path, fake.clone(), clock.clone());
        assert_eq!(src.access_token().await.unwrap().access_token, "at-old");
        tokio::time::advance(Duration::from_millis(29_999)).await;
        assert_eq!(src.access_token().await.unwrap().access_token, "at-old", "31 s left: still good");
        assert!(src.status().await.unwrap().is_valid);
        tokio::time::advance(Duration::from_millis(1)).await;
        // 30 s left, not more than the margin: refreshed before it expires.
        assert!(!src.status().await.unwrap().is_valid);
        let t = src.access_token().await.unwrap();
        assert_eq!((t.access_token.as_str(), fake.count()), ("at-net-1", 1));
        assert_eq!(t.expires_at_ms, Some(clock.now_ms() + 3_600_000));
        assert_eq!(t.resource_url.as_deref(), Some("portal.qwen.ai"));
        assert_eq!(src.status().await.unwrap().time_until_expiry_s, 3600);
        assert_eq!(src.access_token().await.unwrap().access_token, "at-net-1");
        assert_eq!(fake.count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn invalid_grant_clears_file_and_memory_and_asks_for_a_sign_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth_creds.json");
        let clock = Arc::new(TokioClock::new());
        write_qwen_file(&path, "at-old", "rt-dead", clock.now_ms() - 1);
        let fake = FakeTokenEndpoint::new("net", Duration::ZERO);
        fake.reject.store(true, Ordering::SeqCst);
        let (src, events) = source(&path, fake.clone(), clock);
        let e = src.access_token().await.unwrap_err();
        assert!(matches!(&e, Error::Authentication { provider_code: Some(c), status: Some(400), .. } if c == INVALID_GRANT), "{e:?}");
        assert!(requires_reauthentication(&e));
        assert!(e.to_string().contains("re-authentication is required"), "{e}");
        assert!(!path.exists(), "the credential file is deleted");
        let status = src.status().await.unwrap();
        assert!(!status.has_access_token && !status.has_refresh_token && !status.is_valid);
        assert!(matches!(events.lock().unwrap()[..], [AuthEvent::AuthenticationRequired { reason: ReauthReason::RefreshRejected, .. }]));
        // Memory is empty too: the next call does not try the dead refresh token again.
        let e = src.access_token().await.unwrap_err();
        assert!(requires_reauthentication(&e), "{e:?}");
        assert_eq!(fake.count(), 1);
        // Someone signs in (another process writes the file): picked up without a restart.
        write_qwen_file(&path, "at-new", "rt-new", src.client().now_ms() + 3_600_000);
        assert_eq!(src.access_token().await.unwrap().access_token, "at-new");
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_that_gives_up_does_not_abort_the_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth_creds.json");
        let clock = Arc::new(TokioClock::new());
        write_qwen_file(&path, "at-old", "rt-old", clock.now_ms() - 1);
        let fake = FakeTokenEndpoint::new("net", Duration::from_secs(1));
        let (src, _) = source(&path, fake.clone(), clock);
        assert!(tokio::time::timeout(Duration::from_millis(100), src.access_token()).await.is_err());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(read_json(&path)["refresh_token"], "rt-net-1", "the rotated refresh token was saved");
        assert_eq!(src.access_token().await.unwrap().access_token, "at-net-1");
        assert_eq!(fake.count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_another_source_wrote_is_adopted_without_a_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth_creds.json");
        let clock = Arc::new(TokioClock::new());
        write_qwen_file(&path, "at-old", "rt-old", clock.now_ms() + 60_000);
        let (a, _) = source(&path, FakeTokenEndpoint::new("a", Duration::ZERO), clock.clone());
        let fake_b = FakeTokenEndpoint::new("b", Duration::ZERO);
        let (b, events_b) = source(&path, fake_b.clone(), clock);
        assert_eq!(b.access_token().await.unwrap().access_token, "at-old");
        tokio::time::advance(Duration::from_secs(45)).await;
        assert_eq!(a.access_token().await.unwrap().access_token, "at-a-1");
        // b's token is due too, but the file has a fresh one now.
        assert_eq!(b.access_token().await.unwrap().access_token, "at-a-1");
        assert_eq!(fake_b.count(), 0);
        assert!(matches!(events_b.lock().unwrap()[..], [AuthEvent::TokenRefreshed { origin: RefreshOrigin::OtherProcess, .. }]));
        // A 401 for the token a refreshed: b refreshes with the rotated refresh token from the file.
        assert_eq!(b.invalidate_and_refresh("at-a-1").await.unwrap().access_token, "at-b-1");
        assert_eq!(*fake_b.seen_refresh_tokens.lock().unwrap(), ["rt-a-1"]);
    }

    #[cfg(unix)]
    #[tokio::test(start_paused = true)]
    async fn the_file_is_private_and_written_atomically() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let creds_dir = dir.path().join("home").join(".qwen");
        let path = creds_dir.join("oauth_creds.json");
        let clock = Arc::new(TokioClock::new());
        let (src, _) = source(&path, FakeTokenEndpoint::new("net", Duration::ZERO), clock.clone());
        src.set_tokens(TokenSet::bearer("at-1", Some("rt-1".into()), Some(clock.now_ms() + 10_000))).await.unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&creds_dir), 0o700);
        assert_eq!(mode(&dir.path().join("home")), 0o700);
        src.access_token().await.unwrap(); // refreshes (10 s left) and rewrites the file
        assert_eq!(read_json(&path)["access_token"], "at-net-1");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(entries(&creds_dir), ["oauth_creds.json", "oauth_creds.json.lock"], "no temp files left");

        // A write that cannot happen leaves the old content. (Root ignores directory modes, so
        // this part only runs unprivileged; the store's unit tests fail a write midway instead.)
        let before = fs::read(&path).unwrap();
        fs::set_permissions(&creds_dir, fs::Permissions::from_mode(0o500)).unwrap();
        let privileged = fs::write(creds_dir.join("probe"), b"").is_ok();
        if privileged {
            let _ = fs::remove_file(creds_dir.join("probe"));
            eprintln!("running as root: skipping the read-only directory check");
        } else {
            let e = src.set_tokens(TokenSet::bearer("at-2", None, None)).await.unwrap_err();
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
            assert_eq!(fs::read(&path).unwrap(), before);
            assert_eq!(entries(&creds_dir), ["oauth_creds.json", "oauth_creds.json.lock"]);
        }
        fs::set_permissions(&creds_dir, fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_corrupt_file_is_an_error_naming_it_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth_creds.json");
        let corrupt = "{\"access_token\": \"at-secret\", \"refresh_token\": ";
        fs::write(&path, corrupt).unwrap();
        let fake = FakeTokenEndpoint::new("net", Duration::ZERO);
        let (src, _) = source(&path, fake.clone(), Arc::new(TokioClock::new()));
        for e in [
            src.access_token().await.unwrap_err(),
            src.status().await.unwrap_err(),
            src.set_tokens(TokenSet::bearer("at-new", None, None)).await.unwrap_err(),
        ] {
            let shown = format!("{e} {e:?}");
            assert_eq!(e.code(), "VALIDATION_ERROR");
            assert!(shown.contains(&path.display().to_string()), "{shown}");
            assert!(!shown.contains("at-secret"), "{shown}");
        }
        assert_eq!(fs::read_to_string(&path).unwrap(), corrupt);
        assert_eq!(fake.count(), 0);
        // Clearing is the explicit way out.
        src.clear().await.unwrap();
        src.set_tokens(TokenSet::bearer("at-new", None, None)).await.unwrap();
        assert_eq!(src.access_token().await.unwrap().access_token, "at-new");
    }

    #[tokio::test(start_paused = true)]
    async fn legacy_files_are_read_and_rewritten_in_the_qwen_code_format() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(TokioClock::new());
        // rcc-pipeline's CLIProxyAPI-style file, expired.
        let cpa = dir.path().join("cpa.json");
        fs::write(&cpa, r#"{"access_token":"at-cpa","refresh_token":"rt-cpa","expired":"2020-01-01T00:00:00.000Z","last_refresh":"2019-12-31T18:00:00.000Z","resource_url":"portal.qwen.ai","email":"user@example.com","type":"qwen"}"#).unwrap();
        let fake = FakeTokenEndpoint::new("net", Duration::ZERO);
        let (src, _) = source(&cpa, fake.clone(), clock.clone());
        assert_eq!(src.status().await.unwrap().expires_at_ms, Some(1_577_836_800_000));
        assert_eq!(src.access_token().await.unwrap().access_token, "at-net-1");
        assert_eq!(*fake.seen_refresh_tokens.lock().unwrap(), ["rt-cpa"]);
        let file = read_json(&cpa);
        assert_eq!(
            file.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["access_token", "refresh_token", "token_type", "resource_url", "expiry_date", "email"]
        );
        // The early camelCase file, still valid.
        let camel = dir.path().join("camel.json");
        let expiry = clock.now_ms() + 3_600_000;
        fs::write(
            &camel,
            json!({"accessToken":"at-camel","refreshToken":"rt-camel","tokenExpiry":expiry,"lastRefresh":1,"provider":"qwen"}).to_string(),
        )
        .unwrap();
        let (src, _) = source(&camel, fake.clone(), clock);
        let t = src.access_token().await.unwrap();
        assert_eq!((t.access_token.as_str(), t.refresh_token.as_deref(), t.expires_at_ms), ("at-camel", Some("rt-camel"), Some(expiry)));
        assert_eq!(fake.count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_iflow_api_key_and_unknown_fields_survive_a_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".iflow").join("oauth_creds.json");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(
            &path,
            json!({"access_token":"at-old","refresh_token":"rt-old","expiry_date":1000,"token_type":"Bearer","scope":"openid profile api",
                   "apiKey":"sk-0123456789abcdef0123456789abcdef","userId":"u-42","userName":"Ann"})
            .to_string(),
        )
        .unwrap();
        let fake = FakeTokenEndpoint::new("net", Duration::ZERO);
        let (src, _) = source_with(TokenStore::new(&path).with_format(StoreFormat::IFlow), fake.clone(), Arc::new(TokioClock::new()));
        let t = src.access_token().await.unwrap();
        assert_eq!(t.access_token, "at-net-1");
        assert_eq!(t.api_key.as_deref(), Some("sk-0123456789abcdef0123456789abcdef"), "the provider reads the key from the token set");
        let file = read_json(&path);
        assert_eq!(file["apiKey"], "sk-0123456789abcdef0123456789abcdef");
        assert_eq!((file["userId"].as_str(), file["userName"].as_str()), (Some("u-42"), Some("Ann")));
        assert_eq!(file["access_token"], "at-net-1");
        assert_eq!(file["scope"], "openid profile api");
        assert_eq!(
            file.as_object().unwrap().keys().take(6).collect::<Vec<_>>(),
            ["access_token", "refresh_token", "expiry_date", "token_type", "scope", "apiKey"]
        );
        assert!(!format!("{t:?}").contains("sk-0123"), "Debug hides the key");
    }

    // ---- two processes, one file ----------------------------------------------------------

    const CHILD_DIR_ENV: &str = "RCC_AUTH_CROSS_PROCESS_DIR";
    const CHILD_LABEL_ENV: &str = "RCC_AUTH_CROSS_PROCESS_LABEL";

    /// Both processes wait for each other, then both need a refresh of the expired token.
    #[test]
    fn two_processes_sharing_a_file_refresh_once() {
        let dir = tempfile::tempdir().unwrap();
        write_qwen_file(&dir.path().join("oauth_creds.json"), "at-old", "rt-old", SystemClock.now_ms() - 1000);
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = ["a", "b"]
            .iter()
            .map(|label| {
                std::process::Command::new(&exe)
                    .args(["--exact", "auth_source::cross_process_child", "--nocapture", "--test-threads=1"])
                    .env(CHILD_DIR_ENV, dir.path())
                    .env(CHILD_LABEL_ENV, label)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut origins = Vec::new();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "child failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(stdout.contains("1 passed"), "the child test did not run: {stdout}");
            origins.push(if stdout.contains("origin: Network") {
                "network"
            } else if stdout.contains("origin: OtherProcess") {
                "file"
            } else {
                "?"
            });
        }
        origins.sort();
        // One process called the endpoint; the other waited on the lock and took its token.
        assert_eq!(origins, ["file", "network"]);
        let log = fs::read_to_string(dir.path().join("refreshes.log")).unwrap();
        assert_eq!(log.lines().count(), 1, "one network refresh in all: {log}");
        let a = fs::read_to_string(dir.path().join("result-a")).unwrap();
        let b = fs::read_to_string(dir.path().join("result-b")).unwrap();
        assert_eq!(a, b);
        assert!(a.starts_with("at-"), "{a}");
        assert_eq!(read_json(&dir.path().join("oauth_creds.json"))["access_token"], a.as_str());
    }

    /// The child side of the test above; does nothing unless that test started it.
    #[test]
    fn cross_process_child() {
        let Some(dir) = std::env::var_os(CHILD_DIR_ENV).map(PathBuf::from) else { return };
        let label = std::env::var(CHILD_LABEL_ENV).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let fake = FakeTokenEndpoint::with_counter(&label, Duration::from_millis(300), Some(dir.join("refreshes.log")));
            let (src, events) = source(&dir.join("oauth_creds.json"), fake, Arc::new(SystemClock));
            // Start together, so both see the expired token.
            fs::write(dir.join(format!("ready-{label}")), b"").unwrap();
            let started = std::time::Instant::now();
            while !(dir.join("ready-a").exists() && dir.join("ready-b").exists()) {
                assert!(started.elapsed() < Duration::from_secs(20), "the other process never started");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let t = src.access_token().await.unwrap();
            println!("{label}: {:?}", events.lock().unwrap());
            fs::write(dir.join(format!("result-{label}")), &t.access_token).unwrap();
        });
    }
}
