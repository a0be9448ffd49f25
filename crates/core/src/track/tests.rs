use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;

fn tracker() -> Tracker {
    Tracker::new(TrackerConfig::default())
}

#[test]
fn secret_keys_are_recognised_but_token_counts_are_not() {
    for k in ["Authorization", "apiKey", "api_key", "x-api-key", "access_token", "refresh_token", "password", "client_secret", "token", "idToken", "apiKeys"] {
        assert!(is_secret_key(k), "{k} should be secret");
    }
    for k in ["max_tokens", "prompt_tokens", "total_tokens", "token_type", "model", "content", "tokens"] {
        assert!(!is_secret_key(k), "{k} should not be secret");
    }
}

#[test]
fn redaction_reaches_any_depth_and_strings() {
    let r = Redactor::default();
    r.add_secret("key-registered-123");
    let v = json!({
        "headers": {"Authorization": "Bearer abc.def", "Accept": "json"},
        "a": [{"b": {"c": [{"refresh_token": "rt-1", "max_tokens": 5}]}}],
        "message": "upstream said: invalid key sk-live-0123456789abcdef for Bearer zzz",
        "echo": "the key key-registered-123 leaked",
        "apiKeys": ["k1", "k2"],
        "usage": {"total_tokens": 12},
    });
    let out = r.redact(&v);
    let text = out.to_string();
    for secret in ["abc.def", "rt-1", "0123456789abcdef", "zzz", "key-registered-123", "\"k1\""] {
        assert!(!text.contains(secret), "{secret} leaked in {text}");
    }
    assert_eq!(out["headers"]["Accept"], "json");
    assert_eq!(out["a"][0]["b"]["c"][0]["max_tokens"], 5);
    assert_eq!(out["usage"]["total_tokens"], 12);
    assert_eq!(out["headers"]["Authorization"], REDACTED);
    assert_eq!(out["message"], format!("upstream said: invalid key sk-{REDACTED} for Bearer {REDACTED}"));
    // Multi-byte text survives the pattern scan.
    assert_eq!(r.redact_str("héllo Bearer t0k 日本"), format!("héllo Bearer {REDACTED} 日本"));
}

#[test]
fn deep_nesting_is_redacted() {
    let mut v = json!({"password": "p"});
    for _ in 0..200 {
        v = json!({"nested": [v]});
    }
    let out = Redactor::default().redact(&v);
    assert!(!out.to_string().contains("\"p\""));
}

#[test]
fn stages_are_per_request_and_statistics_add_up() {
    let t = tracker();
    let a = t.create_context(None, "p1", "mock", "chat", &json!({"user": "u"})).unwrap();
    let b = t.create_context(None, "p1", "mock", "chat", &Value::Null).unwrap();
    assert_ne!(a, b);
    assert!(t.add_stage(&a, "queue", None));
    assert!(t.add_stage(&b, "queue", None));
    assert!(t.complete_stage(&a, "queue", Some(&json!({"waited": 1}))));
    assert!(t.fail_stage(&b, "queue", "timed out", None));
    assert!(t.add_stage(&a, "api-execution", None));
    let sa = t.get(&a).unwrap();
    let sb = t.get(&b).unwrap();
    assert_eq!(sa["stages"][0]["status"], "completed");
    assert_eq!(sa["stages"][0]["data"]["waited"], 1);
    assert_eq!(sb["stages"][0]["status"], "failed");
    assert_eq!(sb["stages"][0]["error"], "timed out");
    assert_eq!(sa["status"], "running");
    let stats = t.statistics();
    assert_eq!(stats["activeRequests"], 2);
    assert_eq!(stats["totalStages"], 3);
    assert_eq!(stats["completedStages"], 1);
    assert_eq!(stats["failedStages"], 1);
    assert_eq!(stats["runningStages"], 1);
    let done = t.complete_request(&b).unwrap();
    assert_eq!(done["status"], "failed");
    assert!(done["duration"].as_f64().is_some());
    assert!(!t.is_active(&b));
    assert_eq!(t.get(&b).unwrap()["status"], "failed", "finished requests stay readable");
    assert!(!t.add_stage(&b, "late", None), "a completed request takes no more stages");
    assert_eq!(t.statistics()["failedRequests"], 1);
}

#[test]
fn duplicate_ids_and_empty_ids_are_rejected() {
    let t = tracker();
    t.create_context(Some("r1"), "", "p", "chat", &Value::Null).unwrap();
    let e = t.create_context(Some("r1"), "", "p", "chat", &Value::Null).unwrap_err();
    assert!(e.to_string().contains("r1"));
    assert!(t.create_context(Some(""), "", "p", "chat", &Value::Null).is_err());
}

#[test]
fn completing_an_unopened_stage_records_it() {
    let t = tracker();
    let id = t.create_context(None, "", "p", "chat", &Value::Null).unwrap();
    assert!(t.complete_stage(&id, "request-init", None));
    let s = t.get(&id).unwrap();
    assert_eq!(s["stages"][0]["status"], "completed");
    assert!(s["stages"][0]["duration"].as_f64().unwrap() >= 0.0);
}

#[test]
fn retention_is_bounded_by_count() {
    let t = Tracker::new(TrackerConfig { max_retained: 10, ..TrackerConfig::default() });
    let ids: Vec<String> = (0..50).map(|_| t.create_context(None, "", "p", "chat", &Value::Null).unwrap()).collect();
    for id in &ids {
        t.complete_request(id).unwrap();
    }
    assert_eq!(t.finished().len(), 10);
    assert!(t.get(&ids[39]).is_none());
    assert!(t.get(&ids[40]).is_some());
    assert_eq!(t.statistics()["retainedRequests"], 10);
    assert_eq!(t.statistics()["completedRequests"], 50);
}

#[test]
fn retention_is_bounded_by_age() {
    let t = Tracker::new(TrackerConfig { retention: Duration::from_millis(30), ..TrackerConfig::default() });
    let id = t.create_context(None, "", "p", "chat", &Value::Null).unwrap();
    t.complete_request(&id);
    assert!(t.get(&id).is_some());
    std::thread::sleep(Duration::from_millis(60));
    assert!(t.get(&id).is_none());
}

#[test]
fn abandoned_active_requests_are_bounded() {
    let t = Tracker::new(TrackerConfig { max_active: 100, ..TrackerConfig::default() });
    let ids: Vec<String> = (0..1000).map(|_| t.create_context(None, "", "p", "chat", &Value::Null).unwrap()).collect();
    assert_eq!(t.active().len(), 100);
    assert!(t.is_active(&ids[999]));
    assert!(!t.is_active(&ids[0]));
    assert_eq!(t.statistics()["abandonedRequests"], 900);
}

#[test]
fn concurrent_requests_never_share_stages() {
    let t = Arc::new(Tracker::new(TrackerConfig { max_retained: 100_000, ..TrackerConfig::default() }));
    let threads: Vec<_> = (0..16)
        .map(|n| {
            let t = t.clone();
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0..500 {
                    let id = t.create_context(None, "", "p", "chat", &json!({"thread": n, "i": i})).unwrap();
                    for stage in ["request-init", "queue", "api-execution"] {
                        t.add_stage(&id, stage, Some(&json!({"owner": &id})));
                        if i % 7 == 0 && stage == "api-execution" {
                            t.fail_stage(&id, stage, "boom", None);
                        } else {
                            t.complete_stage(&id, stage, None);
                        }
                    }
                    t.complete_request(&id).unwrap();
                    ids.push(id);
                }
                ids
            })
        })
        .collect();
    let all: Vec<String> = threads.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert_eq!(all.len(), 8000);
    let unique: std::collections::HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), 8000, "request ids are unique");
    for id in &all {
        let ctx = t.get(id).unwrap();
        let stages = ctx["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 3, "{id}");
        for s in stages {
            assert_eq!(s["data"]["owner"], id.as_str(), "a stage of another request leaked into {id}");
            assert_ne!(s["status"], "running");
        }
    }
    let stats = t.statistics();
    assert_eq!(stats["activeRequests"], 0);
    assert_eq!(stats["totalRequests"], 8000);
    assert_eq!(stats["failedRequests"].as_u64().unwrap() + stats["completedRequests"].as_u64().unwrap(), 8000);
}

#[test]
fn metadata_and_stage_data_are_redacted_on_entry() {
    let t = tracker();
    let id = t.create_context(None, "", "p", "chat", &json!({"auth": {"access_token": "at-secret"}})).unwrap();
    t.complete_stage(&id, "authentication", Some(&json!({"headers": {"authorization": "Bearer xyz"}})));
    t.fail_stage(&id, "api-execution", "rejected key sk-abcdefgh12345678", None);
    let text = t.get(&id).unwrap().to_string();
    for s in ["at-secret", "xyz", "abcdefgh12345678"] {
        assert!(!text.contains(s), "{s} leaked: {text}");
    }
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rcc-track-{tag}-{}-{}", std::process::id(), fastrand::u64(..)));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn io_ring_is_bounded_and_filterable() {
    let log = IoLog::new(IoConfig { capacity: 5, ..IoConfig::default() }, Arc::default());
    for i in 0..12 {
        log.record(json!({"operationId": format!("op{i}"), "operationType": if i % 2 == 0 {"pipeline_end"} else {"module_operation"}, "success": i % 3 != 0}));
    }
    assert_eq!(log.len(), 5);
    let all = log.entries(&IoFilter::default());
    assert_eq!(all[0]["operationId"], "op7");
    assert_eq!(all[4]["operationId"], "op11");
    assert!(all.windows(2).all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()));
    let ends = log.entries(&IoFilter { operation_type: Some("pipeline_end".into()), ..IoFilter::default() });
    assert_eq!(ends.len(), 2);
    let failed = log.entries(&IoFilter { success: Some(false), ..IoFilter::default() });
    assert_eq!(failed.iter().map(|e| e["operationId"].as_str().unwrap()).collect::<Vec<_>>(), vec!["op9"]);
    assert_eq!(log.entries(&IoFilter { limit: Some(2), ..IoFilter::default() }).len(), 2);
}

#[test]
fn io_files_rotate_are_private_and_hold_no_secrets() {
    let dir = temp_dir("files");
    let redactor = Arc::new(Redactor::default());
    redactor.add_secret("registered-secret-value");
    let log = IoLog::new(
        IoConfig { capacity: 100, directory: Some(dir.clone()), max_entries_per_file: 4, max_files: 2, module_id: "mod/with spaces".into() },
        redactor,
    );
    for i in 0..10 {
        log.record(json!({"operationId": i, "input": {"apiKey": "plain-key", "note": "registered-secret-value"}, "output": {"token": "t"}}));
    }
    let files = log.files();
    assert_eq!(files.len(), 2, "older files are deleted");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    let mut lines = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        assert!(name.starts_with("mod_with_spaces-") && name.ends_with(".jsonl"), "{name}");
        let text = std::fs::read_to_string(f).unwrap();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["input"]["apiKey"], REDACTED);
            lines += 1;
        }
        assert!(!text.contains("plain-key") && !text.contains("registered-secret-value") && !text.contains("\"t\""));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
    assert_eq!(lines, 6, "the last two files: 4 + 2 entries");
    assert!(log.file_error().is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unwritable_directory_stops_file_output_not_recording() {
    let blocker = temp_dir("blocker");
    std::fs::write(&blocker, b"a file, not a directory").unwrap();
    let log = IoLog::new(IoConfig { directory: Some(blocker.join("io")), ..IoConfig::default() }, Arc::default());
    log.record(json!({"operationId": "x"}));
    log.record(json!({"operationId": "y"}));
    assert_eq!(log.len(), 2);
    assert!(log.file_error().unwrap().contains("stopped"));
    let _ = std::fs::remove_file(&blocker);
}

#[test]
fn tracker_config_from_js_options() {
    let c = TrackerConfig::from_value(&json!({"id": "t1", "enableIOTracking": true, "debugBaseDirectory": "/tmp/x", "maxIOEntries": 7, "maxRetainedRequests": 3})).unwrap();
    let io = c.io.unwrap();
    assert_eq!(io.capacity, 7);
    assert_eq!(io.directory.unwrap(), std::path::PathBuf::from("/tmp/x/io"));
    assert_eq!(io.module_id, "t1");
    assert_eq!(c.max_retained, 3);
    assert!(TrackerConfig::from_value(&json!({})).unwrap().io.is_none());
    let memory_only = TrackerConfig::from_value(&json!({"enableIOTracking": true})).unwrap();
    assert!(memory_only.io.unwrap().directory.is_none());
    let e = TrackerConfig::from_value(&json!({"maxRetainedRequests": -1})).unwrap_err();
    assert!(e.to_string().contains("maxRetainedRequests"), "{e}");
    let e = TrackerConfig::from_value(&json!({"enableIOTracking": true, "ioTrackingConfig": {"maxFiles": 0}})).unwrap_err();
    assert!(e.to_string().contains("ioTrackingConfig.maxFiles"), "{e}");
}
