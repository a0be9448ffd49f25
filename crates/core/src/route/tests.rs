//! The expansion rules, the rejected configs (each naming its JSON path), the file variant,
//! and random configs checked for panics and table consistency.

use std::collections::HashSet;
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::*;

fn build(config: Value) -> Value {
    build_routing_table(&config).unwrap_or_else(|e| panic!("config rejected: {e}"))
}

/// The error's field and message.
fn rejection(config: Value) -> (String, String) {
    match build_routing_table(&config) {
        Ok(table) => panic!("config accepted: {table}"),
        Err(e @ Error::Validation { .. }) => {
            let field = e.to_payload().get("field").and_then(Value::as_str).unwrap_or_default().to_string();
            (field, e.to_string())
        }
        Err(other) => panic!("not a validation error: {other:?}"),
    }
}

fn message(config: Value) -> String {
    rejection(config).1
}

fn ids<'a>(entries: impl IntoIterator<Item = &'a Value>, key: &str) -> Vec<String> {
    entries.into_iter().map(|e| e[key].as_str().unwrap_or_default().to_string()).collect()
}

fn pipeline_ids(table: &Value) -> Vec<String> {
    table["pipelines"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default()
}

fn lmstudio(extra: Value) -> Value {
    let mut p = json!({"endpoint": "http://localhost:1234/v1"});
    if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(extra.clone());
    }
    p
}

/// A valid config with `routing` replaced.
fn with_routing(routing: Value) -> Value {
    json!({"providers": {"lmstudio": lmstudio(json!({"apiKeys": ["key1", "key2"]}))}, "routing": routing})
}

fn seed() -> Value {
    json!({
        "providers": {"lmstudio": {"apiKeys": ["key1", "key2"], "endpoint": "http://localhost:1234/v1", "maxTokens": 4096}},
        "routing": {"rules": [{"name": "default", "provider": "lmstudio", "model": "llama-3.1-8b"}]}
    })
}

#[test]
fn seed_example_expands_one_entry_per_key() {
    let table = build(seed());
    let keys: Vec<_> = table.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["routes", "pipelines", "defaultRoute", "fallback"]);
    assert_eq!(
        table["routes"]["default"][0],
        json!({
            "routeId": "route-default-lmstudio-llama-3.1-8b-0", "routeName": "default", "virtualModel": "default",
            "provider": "lmstudio", "targetModel": "llama-3.1-8b", "apiKeyIndex": 0,
            "pipelineId": "lmstudio-llama-3.1-8b-0", "weight": 1, "isActive": true, "health": "healthy"
        })
    );
    assert_eq!(ids(table["routes"]["default"].as_array().unwrap(), "pipelineId"), ["lmstudio-llama-3.1-8b-0", "lmstudio-llama-3.1-8b-1"]);
    assert_eq!(
        table["pipelines"]["lmstudio-llama-3.1-8b-1"],
        json!({
            "pipelineId": "lmstudio-llama-3.1-8b-1", "provider": "lmstudio", "type": "openai",
            "endpoint": "http://localhost:1234/v1", "targetModel": "llama-3.1-8b", "apiKeyIndex": 1,
            "hasApiKey": true, "virtualModels": ["default"], "providerConfig": {"maxTokens": 4096}
        })
    );
    let route_keys: Vec<_> = table["routes"]["default"][0].as_object().unwrap().keys().cloned().collect();
    assert_eq!(route_keys, ["routeId", "routeName", "virtualModel", "provider", "targetModel", "apiKeyIndex", "pipelineId", "weight", "isActive", "health"]);
    assert_eq!(table["defaultRoute"], "default");
    assert_eq!(table["fallback"], "none");
    assert!(!table.to_string().contains("key1"), "secrets stay out of the table");
}

#[test]
fn keys_times_models_expansion() {
    let table = build(json!({
        "providers": {"p": {"endpoint": "https://api.example.com/v1", "apiKeys": ["a", "b"], "models": ["m1", "m2"], "type": "anthropic"}},
        "routing": {"default": [{"provider": "p", "model": "m1"}, {"provider": "p", "model": "m2", "weight": 0.5}]}
    }));
    assert_eq!(pipeline_ids(&table), ["p-m1-0", "p-m1-1", "p-m2-0", "p-m2-1"]);
    let entries = table["routes"]["default"].as_array().unwrap();
    assert_eq!(ids(entries, "routeId"), ["route-default-p-m1-0", "route-default-p-m1-1", "route-default-p-m2-0", "route-default-p-m2-1"]);
    assert_eq!(entries.iter().map(|e| e["weight"].clone()).collect::<Vec<_>>(), [json!(1), json!(1), json!(0.5), json!(0.5)]);
    assert_eq!(table["pipelines"]["p-m2-1"]["type"], "anthropic");
    assert_eq!(table["pipelines"]["p-m2-1"]["providerConfig"], json!({}));
}

#[test]
fn both_forms_give_the_same_table() {
    let providers = json!({
        "a": {"endpoint": "http://a/v1", "apiKey": "ka", "headers": {"x": "y"}},
        "b": {"endpoint": "http://b/v1"}
    });
    let rules = build(json!({"providers": providers, "routing": {"rules": [
        {"name": "default", "provider": "a", "model": "m"},
        {"name": "coding", "provider": "b", "model": "c", "weight": 3},
        {"name": "default", "provider": "b", "model": "m"}
    ]}}));
    let map = build(json!({"providers": providers, "routing": {
        "default": [{"provider": "a", "model": "m"}, {"provider": "b", "model": "m"}],
        "coding": [{"provider": "b", "model": "c", "weight": 3}]
    }}));
    assert_eq!(rules, map);
    assert_eq!(rules["routes"].as_object().unwrap().keys().collect::<Vec<_>>(), ["default", "coding"]);
    assert_eq!(rules["pipelines"]["a-m-0"]["providerConfig"], json!({"headers": {"x": "y"}}));
}

#[test]
fn duplicates_within_a_route_collapse_and_add_weights() {
    let table = build(with_routing(json!({"default": [
        {"provider": "lmstudio", "model": "m", "weight": 2},
        {"provider": "lmstudio", "model": "n"},
        {"provider": "lmstudio", "model": "m", "weight": 0.5}
    ]})));
    let entries = table["routes"]["default"].as_array().unwrap();
    assert_eq!(ids(entries, "pipelineId"), ["lmstudio-m-0", "lmstudio-m-1", "lmstudio-n-0", "lmstudio-n-1"]);
    assert_eq!(entries[0]["weight"], json!(2.5));
    assert_eq!(entries[1]["weight"], json!(2.5));
    assert_eq!(entries[2]["weight"], json!(1));
}

#[test]
fn a_pipeline_shared_by_routes_lists_every_virtual_model() {
    let table = build(with_routing(json!({"rules": [
        {"name": "default", "provider": "lmstudio", "model": "m"},
        {"name": "coding", "provider": "lmstudio", "model": "m"},
        {"name": "default", "provider": "lmstudio", "model": "m"}
    ]})));
    assert_eq!(pipeline_ids(&table), ["lmstudio-m-0", "lmstudio-m-1"]);
    assert_eq!(table["pipelines"]["lmstudio-m-0"]["virtualModels"], json!(["default", "coding"]));
    assert_eq!(table["routes"]["default"].as_array().unwrap().len(), 2);
    assert_eq!(table["routes"]["default"][0]["weight"], json!(2));
    assert_eq!(ids(table["routes"]["coding"].as_array().unwrap(), "routeId"), ["route-coding-lmstudio-m-0", "route-coding-lmstudio-m-1"]);
}

#[test]
fn keyless_provider_is_one_pipeline_without_a_key() {
    let table = build(json!({
        "providers": {"local": {"endpoint": "http://127.0.0.1:8080/v1"}, "empty": {"endpoint": "http://x/", "apiKeys": []}},
        "routing": {"default": [{"provider": "local", "model": "m"}, {"provider": "empty", "model": "m"}]}
    }));
    assert_eq!(pipeline_ids(&table), ["local-m-0", "empty-m-0"]);
    assert_eq!(table["pipelines"]["local-m-0"]["hasApiKey"], false);
    assert_eq!(table["pipelines"]["local-m-0"]["apiKeyIndex"], 0);
    assert_eq!(table["routes"]["default"][0]["apiKeyIndex"], 0);
}

#[test]
fn single_api_key_is_index_zero() {
    let config = json!({"providers": {"p": {"endpoint": "http://x/v1", "apiKey": "sk-one"}}, "routing": {"default": [{"provider": "p", "model": "m"}]}});
    let table = build(config.clone());
    assert_eq!(pipeline_ids(&table), ["p-m-0"]);
    assert_eq!(table["pipelines"]["p-m-0"]["hasApiKey"], true);
    assert!(!table.to_string().contains("sk-one"));
    assert_eq!(api_key(&config, "p", 0), Some("sk-one"));
    assert_eq!(api_key(&config, "p", 1), None);
}

#[test]
fn api_key_lookup_follows_the_table_indices() {
    let config = seed();
    let table = build(config.clone());
    for entry in table["routes"]["default"].as_array().unwrap() {
        let index = entry["apiKeyIndex"].as_u64().unwrap() as usize;
        assert_eq!(api_key(&config, "lmstudio", index), Some(["key1", "key2"][index]));
    }
    assert_eq!(api_key(&config, "lmstudio", 2), None);
    assert_eq!(api_key(&config, "nobody", 0), None);
    assert_eq!(api_key(&json!({"providers": {"p": {}}}), "p", 0), None);
    assert_eq!(api_key(&json!({"providers": {"p": {"apiKeys": [3, ""]}}}), "p", 0), None);
    assert_eq!(api_key(&json!({"providers": {"p": {"apiKeys": [3, ""]}}}), "p", 1), None);
    assert_eq!(api_key(&json!([1, 2]), "p", 0), None);
    assert_eq!(api_key(&Value::Null, "p", 0), None);
}

#[test]
fn default_route_selection() {
    let routes = json!({"coding": [{"provider": "lmstudio", "model": "m"}], "default": [{"provider": "lmstudio", "model": "m"}]});
    assert_eq!(build(with_routing(routes.clone()))["defaultRoute"], "default", "a route named default wins over the first");
    let first = json!({"coding": [{"provider": "lmstudio", "model": "m"}], "chat": [{"provider": "lmstudio", "model": "m"}]});
    assert_eq!(build(with_routing(first.clone()))["defaultRoute"], "coding", "else the first route");
    let mut config = with_routing(routes);
    config["defaultRoute"] = json!("coding");
    assert_eq!(build(config.clone())["defaultRoute"], "coding", "the configured one");
    config["defaultRoute"] = json!("x");
    assert_eq!(rejection(config.clone()), ("defaultRoute".into(), "defaultRoute names unknown route 'x' (known: coding, default)".into()));
    config["defaultRoute"] = json!(5);
    assert_eq!(message(config), "defaultRoute must be a non-empty string, got 5");
}

#[test]
fn fallback_values() {
    let mut config = seed();
    config["fallback"] = json!("next-pipeline");
    assert_eq!(build(config.clone())["fallback"], "next-pipeline");
    config["fallback"] = json!("retry");
    assert_eq!(rejection(config), ("fallback".into(), "fallback must be 'none' or 'next-pipeline', got \"retry\"".into()));
}

#[test]
fn bad_providers_name_their_path() {
    let routing = json!({"default": [{"provider": "lmstudio", "model": "m"}]});
    let with = |provider: Value| json!({"providers": {"lmstudio": provider}, "routing": routing});
    assert_eq!(
        rejection(with(lmstudio(json!({"apiKeys": ["key1", 3]})))),
        ("providers.lmstudio.apiKeys[1]".into(), "providers.lmstudio.apiKeys[1] must be a non-empty string, got a number".into())
    );
    assert_eq!(message(with(lmstudio(json!({"apiKeys": ["key1", ""]})))), "providers.lmstudio.apiKeys[1] must be a non-empty string, got an empty string");
    let repeated = message(with(lmstudio(json!({"apiKeys": ["sk-same", "sk-same"]}))));
    assert_eq!(repeated, "providers.lmstudio.apiKeys[1] repeats providers.lmstudio.apiKeys[0]; each key must be distinct");
    assert_eq!(message(with(lmstudio(json!({"apiKeys": "sk-secret"})))), "providers.lmstudio.apiKeys must be an array of non-empty strings, got a string");
    assert_eq!(message(with(lmstudio(json!({"apiKey": ""})))), "providers.lmstudio.apiKey must be a non-empty string, got an empty string");
    assert_eq!(rejection(with(lmstudio(json!({"apiKey": "a", "apiKeys": ["b"]})))).0, "providers.lmstudio.apiKey");
    assert_eq!(
        rejection(with(json!({"endpoint": "ftp://x"}))),
        ("providers.lmstudio.endpoint".into(), "providers.lmstudio.endpoint must be an http(s) URL, got \"ftp://x\"".into())
    );
    assert_eq!(message(with(json!({}))), "providers.lmstudio.endpoint must be an http(s) URL, got nothing");
    assert_eq!(message(with(json!({"endpoint": "localhost:1234"}))), "providers.lmstudio.endpoint must be an http(s) URL, got \"localhost:1234\"");
    assert_eq!(message(with(json!({"endpoint": 1}))), "providers.lmstudio.endpoint must be an http(s) URL, got 1");
    assert_eq!(message(with(lmstudio(json!({"type": ""})))), "providers.lmstudio.type must be a non-empty string, got \"\"");
    assert_eq!(message(with(lmstudio(json!({"models": "m"})))), "providers.lmstudio.models must be an array of model names, got \"m\"");
    assert_eq!(message(with(lmstudio(json!({"models": ["m", 2]})))), "providers.lmstudio.models[1] must be a non-empty string, got 2");
    assert_eq!(message(with(json!("http://x"))), "providers.lmstudio must be an object, got \"http://x\"");
    assert_eq!(message(json!({"providers": {}, "routing": routing})), "providers must have at least one provider");
    assert_eq!(message(json!({"routing": routing})), "providers must be an object of providers, got nothing");
    assert_eq!(message(json!({"providers": [], "routing": routing})), "providers must be an object of providers, got []");
    assert_eq!(rejection(json!({"providers": {" ": lmstudio(json!({}))}, "routing": routing})).0, "providers");
    assert_eq!(message(json!("config")), "config must be an object, got \"config\"");
}

#[test]
fn secrets_are_not_echoed() {
    let config = json!({"providers": {"p": {"endpoint": "http://x", "apiKeys": [["sk-nested"]]}}, "routing": {"d": [{"provider": "p", "model": "m"}]}});
    let (field, msg) = rejection(config);
    assert_eq!(field, "providers.p.apiKeys[0]");
    assert!(!msg.contains("sk-nested"), "{msg}");
}

#[test]
fn bad_routing_names_its_path() {
    assert_eq!(
        rejection(with_routing(json!({"default": [{"provider": "lmstudo", "model": "m"}]}))),
        ("routing.default[0].provider".into(), "routing.default[0].provider names unknown provider 'lmstudo' (known: lmstudio)".into())
    );
    let models = json!({"providers": {"lmstudio": lmstudio(json!({"models": ["a", "b"]}))}, "routing": {"rules": [
        {"name": "d", "provider": "lmstudio", "model": "a"},
        {"name": "d", "provider": "lmstudio", "model": "b"},
        {"name": "d", "provider": "lmstudio", "model": "x"}
    ]}});
    assert_eq!(
        rejection(models),
        ("routing.rules[2].model".into(), "routing.rules[2].model 'x' is not one of providers.lmstudio.models (a, b)".into())
    );
    let no_models = json!({"providers": {"p": {"endpoint": "http://x", "models": []}}, "routing": {"d": [{"provider": "p", "model": "m"}]}});
    assert_eq!(message(no_models), "routing.d[0].model 'm' is not one of providers.p.models (none)");
    assert_eq!(message(with_routing(json!({}))), "routing must have at least one route");
    assert_eq!(message(with_routing(json!({"rules": []}))), "routing must have at least one route");
    assert_eq!(rejection(with_routing(json!({"default": []}))), ("routing.default".into(), "routing.default must have at least one target".into()));
    assert_eq!(message(with_routing(json!({"default": {"provider": "lmstudio"}}))), "routing.default must be an array of targets, got {\"provider\":\"lmstudio\"}");
    assert_eq!(message(with_routing(json!({"default": ["lmstudio"]}))), "routing.default[0] must be an object, got \"lmstudio\"");
    assert_eq!(message(with_routing(json!({"rules": {"name": "x"}}))), "routing.rules must be an array of rules, got {\"name\":\"x\"}");
    assert_eq!(message(with_routing(json!({"rules": [7]}))), "routing.rules[0] must be an object, got 7");
    assert_eq!(
        message(with_routing(json!({"rules": [{"provider": "lmstudio", "model": "m"}]}))),
        "routing.rules[0].name must be a non-empty string, got nothing"
    );
    assert_eq!(message(with_routing(json!({"rules": [{"name": " ", "provider": "lmstudio", "model": "m"}]}))), "routing.rules[0].name must be a non-empty string, got \" \"");
    assert_eq!(message(with_routing(json!({"default": [{"provider": "lmstudio", "model": ""}]}))), "routing.default[0].model must be a non-empty string, got \"\"");
    assert_eq!(message(with_routing(json!({"default": [{"provider": 1, "model": "m"}]}))), "routing.default[0].provider must be a non-empty string, got 1");
    assert_eq!(
        rejection(with_routing(json!({"default": [{"provider": "lmstudio", "model": "m", "weight": -1}]}))),
        ("routing.default[0].weight".into(), "routing.default[0].weight must be a non-negative number, got -1".into())
    );
    assert_eq!(
        message(with_routing(json!({"rules": [{"name": "d", "provider": "lmstudio", "model": "m", "weight": "2"}]}))),
        "routing.rules[0].weight must be a non-negative number, got \"2\""
    );
    assert_eq!(rejection(with_routing(json!({"": [{"provider": "lmstudio", "model": "m"}]}))).0, "routing");
    assert_eq!(message(json!({"providers": {"lmstudio": lmstudio(json!({}))}})), "routing must be an object, got nothing");
    assert_eq!(message(json!({"providers": {"lmstudio": lmstudio(json!({}))}, "routing": [1]})), "routing must be an object, got [1]");
}

#[test]
fn ids_that_would_clash_are_refused() {
    // "a-b" × "c" and "a" × "b-c" both join to "a-b-c-0".
    let config = json!({
        "providers": {"a-b": {"endpoint": "http://x"}, "a": {"endpoint": "http://y"}},
        "routing": {"default": [{"provider": "a-b", "model": "c"}, {"provider": "a", "model": "b-c"}]}
    });
    let (field, msg) = rejection(config);
    assert_eq!(field, "routing.default[1]");
    assert!(msg.contains("pipeline id 'a-b-c-0'"), "{msg}");
    // Route ids: "x-y" + "p-m-0" and "x" + "y-p-m-0".
    let config = json!({
        "providers": {"p": {"endpoint": "http://x"}, "y-p": {"endpoint": "http://y"}},
        "routing": {"x-y": [{"provider": "p", "model": "m"}], "x": [{"provider": "y-p", "model": "m"}]}
    });
    let (field, msg) = rejection(config);
    assert_eq!(field, "routing.x[0]");
    assert!(msg.contains("route id 'route-x-y-p-m-0'"), "{msg}");
}

#[test]
fn weights_stay_finite_and_integral_weights_print_as_integers() {
    let table = build(with_routing(json!({"default": [
        {"provider": "lmstudio", "model": "m", "weight": 1.5e308},
        {"provider": "lmstudio", "model": "m", "weight": 1.5e308},
        {"provider": "lmstudio", "model": "n", "weight": 0},
        {"provider": "lmstudio", "model": "o", "weight": -0.0}
    ]})));
    let weights: Vec<_> = table["routes"]["default"].as_array().unwrap().iter().map(|e| e["weight"].clone()).collect();
    assert_eq!(weights[0], json!(f64::MAX));
    assert_eq!(weights[2..], [json!(0), json!(0), json!(0), json!(0)]);
}

// ---------------------------------------------------------------------------------------
// The file variant

/// A path in the temp dir no other test (or run) uses.
fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rcc-route-{tag}-{}-{:016x}.json", std::process::id(), fastrand::u64(..)))
}

/// Writes `text` to a fresh temp file, runs `f` on its path, then removes it.
fn with_file<T>(tag: &str, text: &str, f: impl FnOnce(&Path) -> T) -> T {
    let path = temp_path(tag);
    std::fs::write(&path, text).unwrap();
    let out = f(&path);
    let _ = std::fs::remove_file(&path);
    out
}

#[test]
fn file_variant_reads_and_expands() {
    let text = format!("\u{feff}{}", serde_json::to_string_pretty(&seed()).unwrap());
    let table = with_file("ok", &text, build_routing_table_from_file).unwrap();
    assert_eq!(table, build(seed()));
}

#[test]
fn file_variant_names_line_and_column_of_bad_json() {
    let err = with_file("bad", "{\n  \"providers\": {\n    \"p\": }\n}", |p| (p.display().to_string(), build_routing_table_from_file(p).unwrap_err()));
    let (shown, err) = err;
    let msg = err.to_string();
    assert!(matches!(err, Error::Validation { .. }));
    assert!(msg.contains(&shown), "{msg}");
    assert!(msg.contains("line 3 column 10"), "{msg}");
}

#[test]
fn file_variant_reports_config_errors_by_json_path() {
    let err = with_file("invalid", r#"{"providers": {"p": {"endpoint": "ftp://x"}}, "routing": {}}"#, |p| build_routing_table_from_file(p).unwrap_err());
    assert_eq!(err.to_payload()["field"], "providers.p.endpoint");
}

#[test]
fn file_variant_names_a_missing_file() {
    let path = temp_path("missing");
    let err = build_routing_table_from_file(&path).unwrap_err();
    let shown = path.display().to_string();
    assert_eq!(err.to_payload()["field"], shown.as_str());
    let msg = err.to_string();
    assert!(msg.contains(&shown), "{msg}");
    let os_reason = std::fs::read_to_string(&path).unwrap_err().to_string();
    assert!(msg.contains(&os_reason), "{msg}");
}

// ---------------------------------------------------------------------------------------
// Random configs

/// Random configs: small name pools containing `-` (so that id clashes happen), and each
/// field now and then replaced by a bad value, rarely enough that most configs are valid.
struct Gen {
    rng: fastrand::Rng,
}

impl Gen {
    const PROVIDERS: [&str; 4] = ["p", "a-b", "a", "lm-studio"];
    const MODELS: [&str; 3] = ["m", "b-m", "llama-3.1-8b"];
    const ROUTES: [&str; 4] = ["default", "coding", "x-a", "x"];

    /// Whether to spoil the next field.
    fn spoil(&mut self) -> bool {
        self.rng.u8(0..150) == 0
    }

    fn scalar(&mut self) -> Value {
        match self.rng.u8(0..8) {
            0 => Value::Null,
            1 => json!(self.rng.bool()),
            2 => json!(self.rng.i64(-5..5)),
            3 => json!(self.rng.f64() * 3.0 - 1.0),
            4 => json!("text"),
            5 => json!([]),
            6 => json!({}),
            _ => json!("ftp://h/v1"),
        }
    }

    fn name(&mut self, pool: &[&str]) -> Value {
        if self.spoil() {
            return [json!(""), json!(7), Value::Null][self.rng.usize(0..3)].clone();
        }
        json!(pool[self.rng.usize(0..pool.len())])
    }

    fn provider(&mut self) -> Value {
        if self.spoil() {
            return self.scalar();
        }
        let mut p = Map::new();
        let endpoint = if self.spoil() { self.scalar() } else { json!(["https://api.example.com", "http://localhost:1/v1"][self.rng.usize(0..2)]) };
        p.insert("endpoint".into(), endpoint);
        match self.rng.u8(0..4) {
            0 => {}
            1 => {
                let key = if self.spoil() { self.scalar() } else { json!(format!("sk-{}", self.rng.u32(..))) };
                p.insert("apiKey".into(), key);
            }
            _ => {
                let keys = (0..self.rng.usize(0..4))
                    .map(|i| if self.spoil() { self.scalar() } else { json!(format!("sk-{i}-{}", self.rng.u32(..))) })
                    .collect();
                p.insert("apiKeys".into(), Value::Array(keys));
            }
        }
        if self.rng.u8(0..3) == 0 {
            let listed = Self::MODELS.iter().filter(|_| !self.spoil()).map(|m| json!(m)).collect();
            p.insert("models".into(), Value::Array(listed));
        }
        if self.rng.u8(0..4) == 0 {
            p.insert("type".into(), if self.spoil() { self.scalar() } else { json!("anthropic") });
        }
        if self.rng.bool() {
            p.insert("maxTokens".into(), self.scalar());
        }
        Value::Object(p)
    }

    fn target(&mut self) -> Map<String, Value> {
        let mut t = Map::new();
        t.insert("provider".into(), self.name(&Self::PROVIDERS));
        t.insert("model".into(), self.name(&Self::MODELS));
        if self.rng.u8(0..3) == 0 {
            let weight = if self.spoil() { self.scalar() } else { json!(self.rng.u8(0..5)) };
            t.insert("weight".into(), weight);
        }
        t
    }

    /// A config in the seed form, and the same routes in the map form.
    fn config(&mut self) -> (Value, Value) {
        let mut providers = Map::new();
        for name in Self::PROVIDERS {
            if !self.spoil() {
                providers.insert(name.to_string(), self.provider());
            }
        }
        let mut rules = Vec::new();
        let mut map = Map::new();
        let rule_count = if self.spoil() { 0 } else { self.rng.usize(1..6) };
        for _ in 0..rule_count {
            let vm = self.name(&Self::ROUTES);
            let target = self.target();
            if let Some(name) = vm.as_str().filter(|n| !n.is_empty()) {
                let targets = map.entry(name.to_string()).or_insert_with(|| json!([]));
                if let Some(targets) = targets.as_array_mut() {
                    targets.push(Value::Object(target.clone()));
                }
            }
            let mut rule = target;
            rule.insert("name".into(), vm);
            rules.push(Value::Object(rule));
        }
        let mut config = json!({"providers": providers, "routing": {"rules": rules}});
        if self.rng.u8(0..4) == 0 {
            config["defaultRoute"] = self.name(&Self::ROUTES);
        }
        if self.rng.u8(0..4) == 0 {
            config["fallback"] = if self.spoil() { self.scalar() } else { json!(["none", "next-pipeline"][self.rng.usize(0..2)]) };
        }
        let mut map_form = config.clone();
        map_form["routing"] = Value::Object(map);
        (config, map_form)
    }
}

/// Every entry's pipeline exists and lists the entry's route; every pipeline is used by an
/// entry of each route it lists; ids are unique; the default route exists.
fn assert_consistent(config: &Value, table: &Value) {
    let routes = table["routes"].as_object().expect("routes");
    let pipelines = table["pipelines"].as_object().expect("pipelines");
    assert!(routes.contains_key(table["defaultRoute"].as_str().expect("defaultRoute")), "{table}");
    let mut used = HashSet::new();
    let mut route_ids = HashSet::new();
    for (vm, entries) in routes {
        let entries = entries.as_array().expect("entries");
        assert!(!entries.is_empty(), "{table}");
        for e in entries {
            let pid = e["pipelineId"].as_str().expect("pipelineId");
            let spec = pipelines.get(pid).unwrap_or_else(|| panic!("{pid} missing in {table}"));
            assert!(spec["virtualModels"].as_array().unwrap().contains(&json!(vm)), "{table}");
            assert_eq!((&spec["provider"], &spec["targetModel"], &spec["apiKeyIndex"]), (&e["provider"], &e["targetModel"], &e["apiKeyIndex"]));
            assert!(route_ids.insert(e["routeId"].as_str().expect("routeId").to_string()), "duplicate route id in {table}");
            assert!(e["weight"].as_f64().is_some_and(|w| w >= 0.0));
            let index = e["apiKeyIndex"].as_u64().unwrap() as usize;
            let provider = e["provider"].as_str().unwrap();
            assert_eq!(api_key(config, provider, index).is_some(), spec["hasApiKey"] == true, "{table}");
            used.insert((pid.to_string(), vm.clone()));
        }
    }
    for (pid, spec) in pipelines {
        for vm in spec["virtualModels"].as_array().unwrap() {
            assert!(used.contains(&(pid.clone(), vm.as_str().unwrap().to_string())), "{pid} unused by {vm} in {table}");
        }
    }
    assert!(!table.to_string().contains("sk-"), "a key leaked into {table}");
}

#[test]
fn random_configs_never_panic_and_stay_consistent() {
    let mut gen = Gen { rng: fastrand::Rng::with_seed(0x5EED_0A7E) };
    let mut accepted = 0;
    for round in 0..200 {
        let (config, map_form) = gen.config();
        match build_routing_table(&config) {
            Ok(table) => {
                accepted += 1;
                assert_consistent(&config, &table);
                assert_eq!(build_routing_table(&map_form).ok().as_ref(), Some(&table), "round {round}: {config}");
            }
            Err(e) => assert!(matches!(e, Error::Validation { field: Some(_), .. }), "round {round}: {e:?}"),
        }
    }
    assert!(accepted >= 100, "only {accepted} of 200 random configs were valid; spoil less often");
}

#[test]
fn random_json_never_panics() {
    fn random_value(gen: &mut Gen, depth: u32) -> Value {
        if depth == 0 || gen.rng.u8(0..3) == 0 {
            return gen.scalar();
        }
        let keys = ["providers", "routing", "rules", "name", "provider", "model", "endpoint", "apiKeys", "apiKey", "models", "weight", "p", "default"];
        if gen.rng.bool() {
            Value::Array((0..gen.rng.usize(0..4)).map(|_| random_value(gen, depth - 1)).collect())
        } else {
            Value::Object((0..gen.rng.usize(0..4)).map(|_| (keys[gen.rng.usize(0..keys.len())].to_string(), random_value(gen, depth - 1))).collect())
        }
    }
    let mut gen = Gen { rng: fastrand::Rng::with_seed(7) };
    for _ in 0..500 {
        let v = random_value(&mut gen, 5);
        let _ = build_routing_table(&v);
        let _ = api_key(&v, "p", gen.rng.usize(0..3));
    }
}
