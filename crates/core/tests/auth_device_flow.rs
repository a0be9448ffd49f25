//! The device flow and the refresh grant over real loopback HTTP (reqwest) against the Qwen
//! OAuth mock of `rcc-mock`: the wire format is what the mock checks (form encoding, client id,
//! PKCE), the state machine reacts to its scripted answers, and the credential source rotates
//! tokens with it.
//!
//! Everything sits in `mod auth_device_flow` so `cargo test -p rcc-core auth` selects it.

mod auth_device_flow {
    use std::path::Path;
    use std::time::Duration;

    use rcc_core::provider::auth::{
        is_invalid_grant, requires_reauthentication, Clock, OAuthClient, OAuthCredentialSource, OAuthEndpoints, SystemClock, TokenSet,
        TokenStore,
    };
    use rcc_core::Error;
    use rcc_mock::{MockConfig, MockServer};
    use tokio_util::sync::CancellationToken;

    async fn mock() -> MockServer {
        MockServer::start(MockConfig::default()).await.unwrap()
    }

    /// Qwen's endpoints under the mock, with a short poll interval so the test runs quickly.
    fn client(m: &MockServer) -> OAuthClient {
        let mut ep = OAuthEndpoints::qwen_with_base(&m.url());
        ep.poll.default_interval = Duration::from_millis(100);
        OAuthClient::new(ep).unwrap()
    }

    #[tokio::test]
    async fn a_device_flow_with_pending_and_slow_down_answers() {
        let m = mock().await;
        m.qwen().script(&["pending", "slow_down", "slow_down_400", "pending_200", "approve"]).unwrap();
        let c = client(&m);
        let auth = c.start().await.unwrap();
        assert!(auth.browser_url().contains(&format!("user_code={}", auth.user_code)), "{auth:?}");
        assert_eq!(auth.expires_in, Duration::from_secs(1800));
        // The mock checks base64url(sha256(code_verifier)) against the challenge sent by start().
        let tokens = c.poll(&auth, &CancellationToken::new()).await.unwrap();
        let stats = m.qwen().stats();
        assert_eq!(stats.polls, 5);
        assert_eq!(Some(tokens.access_token.clone()), stats.access_token);
        assert_eq!(tokens.refresh_token, stats.refresh_token);
        assert_eq!(tokens.resource_url.as_deref(), Some(m.qwen().resource_url().as_str()));
        // 100 ms, then ×1.5 after each slow_down: the gaps grow and never shrink.
        let gaps: Vec<u64> = stats.poll_times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[1] >= 140 && gaps[2] >= 215, "{gaps:?}");
    }

    #[tokio::test]
    async fn denied_and_expired_codes_end_the_flow() {
        let m = mock().await;
        let c = client(&m);
        for (step, code) in [("denied", "access_denied"), ("expired", "expired_token")] {
            m.qwen().script(&["pending", step]).unwrap();
            let auth = c.start().await.unwrap();
            let e = c.poll(&auth, &CancellationToken::new()).await.unwrap_err();
            assert!(matches!(&e, Error::Authentication { provider_code: Some(c), status: Some(400), .. } if c == code), "{e:?}");
        }
        // The user visits the verification page: that approves the code.
        m.qwen().approve_after(None);
        let auth = c.start().await.unwrap();
        let page = reqwest::get(auth.browser_url()).await.unwrap();
        assert!(page.status().is_success());
        c.poll(&auth, &CancellationToken::new()).await.unwrap();
    }

    fn write_expired(path: &Path, access: &str, refresh: &str) {
        TokenStore::new(path).save(&TokenSet::bearer(access, Some(refresh.into()), Some(SystemClock.now_ms() - 1000))).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_source_rotates_tokens_with_one_refresh_for_many_callers() {
        let m = mock().await;
        let issued = m.qwen().issue_tokens();
        m.qwen().set_refresh_delay(Duration::from_millis(200));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth_creds.json");
        write_expired(&path, &issued.access_token, &issued.refresh_token);
        let src = OAuthCredentialSource::new(client(&m), TokenStore::new(&path));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let src = src.clone();
                tokio::spawn(async move { src.access_token().await.map(|t| t.access_token) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), m.qwen().stats().access_token.unwrap());
        }
        assert_eq!(m.qwen().stats().refreshes, 1, "the mock's refresh tokens are single-use: a second refresh would have failed");
        let stored = TokenStore::new(&path).load().unwrap().unwrap();
        assert_eq!(stored.refresh_token, m.qwen().stats().refresh_token);
        assert_eq!(stored.resource_url.as_deref(), Some(m.qwen().resource_url().as_str()));

        // A 401 for the current token: refreshed once more.
        let current = src.access_token().await.unwrap().access_token;
        let next = src.invalidate_and_refresh(&current).await.unwrap();
        assert_ne!(next.access_token, current);
        assert_eq!(m.qwen().stats().refreshes, 2);
    }

    #[tokio::test]
    async fn refresh_failures_from_the_mock() {
        let m = mock().await;
        let c = client(&m);
        let issued = m.qwen().issue_tokens();
        for (failure, check) in [
            ("invalid_client", (|e: &Error| e.code() == "AUTHENTICATION_ERROR" && !is_invalid_grant(e)) as fn(&Error) -> bool),
            ("server_error", |e: &Error| e.code() == "PROVIDER_ERROR" && e.retryable()),
            ("invalid_json", |e: &Error| e.code() == "PROVIDER_ERROR" && e.to_string().contains("not JSON")),
            ("error_200", is_invalid_grant),
            ("invalid_grant", is_invalid_grant),
        ] {
            m.qwen().fail_refresh(Some(failure)).unwrap();
            let e = c.refresh(&issued.refresh_token).await.unwrap_err();
            assert!(check(&e), "{failure}: {e:?}");
            assert!(!format!("{e} {e:?}").contains(&issued.refresh_token), "{failure}: the refresh token leaked: {e:?}");
        }

        // Through the source: invalid_grant deletes the file; a client error keeps it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth_creds.json");
        write_expired(&path, &issued.access_token, &issued.refresh_token);
        let src = OAuthCredentialSource::new(c.clone(), TokenStore::new(&path));
        m.qwen().fail_refresh(Some("invalid_client")).unwrap();
        assert!(!requires_reauthentication(&src.access_token().await.unwrap_err()));
        assert!(path.exists());
        m.qwen().fail_refresh(Some("invalid_grant")).unwrap();
        assert!(requires_reauthentication(&src.access_token().await.unwrap_err()));
        assert!(!path.exists());
    }
}
