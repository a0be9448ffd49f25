//! The builder: validates a user routing config, then expands every route target into one
//! entry per API key, and collects the distinct pipelines those entries run on.
//!
//! Parsing comes first and borrows from the config (`Provider`, `Route`, `Target`); the
//! expansion then only combines validated values, so every error names a config path.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::validate::{invalid, invalid_redacted, Fields};

/// `type` of a provider that does not say.
const DEFAULT_TYPE: &str = "openai";
/// `weight` of a target that does not say.
const DEFAULT_WEIGHT: f64 = 1.0;
/// The accepted `fallback` values; the first is the default (RCC v4's zero-fallback policy).
const FALLBACKS: [&str; 2] = ["none", "next-pipeline"];
/// Provider keys the table states itself (or, for the secrets, must not copy); the rest of a
/// provider object reaches the pipeline untouched as `providerConfig`.
const CONSUMED_PROVIDER_KEYS: [&str; 5] = ["apiKeys", "apiKey", "models", "type", "endpoint"];
/// The `routing` key holding the seed form's list of named rules; any other key is a route.
const RULES_KEY: &str = "rules";

/// One validated entry of `providers`.
struct Provider<'a> {
    name: &'a str,
    kind: &'a str,
    endpoint: &'a str,
    /// How many API keys; 0 for a key-less local server.
    keys: usize,
    /// The target models a route may name, when the provider lists them.
    models: Option<Vec<&'a str>>,
    /// The provider object minus `CONSUMED_PROVIDER_KEYS`.
    rest: Map<String, Value>,
}

/// One provider × model a route sends to, before the per-key expansion.
struct Target<'a> {
    provider: &'a Provider<'a>,
    model: &'a str,
    weight: f64,
    /// Config path of the target object, for errors found during the expansion.
    path: String,
}

/// A virtual model and its targets, duplicates already merged.
struct Route<'a> {
    name: &'a str,
    targets: Vec<Target<'a>>,
}

/// Expands a user routing config into the RoutingTable
/// (`{routes, pipelines, defaultRoute, fallback}`, described in the module docs).
pub fn build_routing_table(config: &Value) -> Result<Value> {
    let root = config.as_object().ok_or_else(|| invalid("config", "an object", Some(config)))?;
    let providers = parse_providers(root)?;
    let routes = parse_routes(root, &providers)?;
    let default_route = default_route(root, &routes)?;
    let fallback = fallback(root)?;

    let mut expansion = Expansion::default();
    let mut route_map = Map::new();
    for route in &routes {
        route_map.insert(route.name.to_string(), Value::Array(expansion.route_entries(route)?));
    }
    let mut table = Map::new();
    table.insert("routes".into(), Value::Object(route_map));
    table.insert("pipelines".into(), Value::Object(expansion.pipelines_json()));
    table.insert("defaultRoute".into(), default_route.into());
    table.insert("fallback".into(), fallback.into());
    Ok(Value::Object(table))
}

/// The API key of `provider` at `index` (the `apiKeyIndex` of a route entry or pipeline) in
/// a routing config. The table leaves secrets out, so consumers fetch them here, by the same
/// indexing rule the builder uses: `apiKeys[index]`, else `apiKey` as index 0.
pub fn api_key<'a>(config: &'a Value, provider: &str, index: usize) -> Option<&'a str> {
    let p = config.get("providers")?.get(provider)?;
    let key = match (present(p.get("apiKeys")), present(p.get("apiKey"))) {
        (Some(Value::Array(keys)), _) => keys.get(index)?.as_str(),
        (None, Some(Value::String(key))) if index == 0 => Some(key.as_str()),
        _ => None,
    };
    key.filter(|k| !k.is_empty())
}

/// An explicit `null` counts as absent, as in `Fields`.
fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

// ---------------------------------------------------------------------------------------
// Providers

fn parse_providers(root: &Map<String, Value>) -> Result<Vec<Provider<'_>>> {
    let providers = match present(root.get("providers")) {
        Some(Value::Object(p)) => p,
        other => return Err(invalid("providers", "an object of providers", other)),
    };
    if providers.is_empty() {
        return Err(Error::validation("providers", "providers must have at least one provider"));
    }
    providers.iter().map(|(name, value)| parse_provider(name, value)).collect()
}

fn parse_provider<'a>(name: &'a str, value: &'a Value) -> Result<Provider<'a>> {
    if is_blank(name) {
        return Err(Error::validation("providers", format!("providers must not have a provider with an empty name, got {name:?}")));
    }
    let path = format!("providers.{name}");
    let obj = value.as_object().ok_or_else(|| invalid(&path, "an object", Some(value)))?;
    let f = Fields::new(obj, &path);
    Ok(Provider {
        name,
        kind: optional_name(obj, "type", &f.path("type"))?.unwrap_or(DEFAULT_TYPE),
        endpoint: endpoint(obj, &f.path("endpoint"))?,
        keys: key_count(&f)?,
        models: models(obj, &f.path("models"))?,
        rest: obj.iter().filter(|(k, _)| !CONSUMED_PROVIDER_KEYS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect(),
    })
}

/// The upstream base URL, required: a pipeline cannot exist without one.
fn endpoint<'a>(obj: &'a Map<String, Value>, path: &str) -> Result<&'a str> {
    match obj.get("endpoint") {
        Some(Value::String(s)) if is_http_url(s) => Ok(s),
        other => Err(invalid(path, "an http(s) URL", other)),
    }
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// Validates the keys without echoing them (they are secrets) and counts them. Giving both
/// `apiKey` and `apiKeys`, or one key twice, is refused: `apiKeyIndex` must point at exactly
/// one key (see `api_key`), and two pipelines sharing a key would halve its rate limit unseen.
fn key_count(f: &Fields<'_>) -> Result<usize> {
    match (present(f.obj.get("apiKeys")), present(f.obj.get("apiKey"))) {
        (Some(_), Some(_)) => {
            let path = f.path("apiKey");
            Err(Error::validation(&path, format!("{path} and {} cannot both be given; list every key in apiKeys", f.path("apiKeys"))))
        }
        (Some(Value::Array(keys)), None) => distinct_keys(keys, &f.path("apiKeys")),
        (Some(other), None) => Err(invalid_redacted(&f.path("apiKeys"), "an array of non-empty strings", Some(other))),
        (None, Some(key)) => non_empty_key(key, &f.path("apiKey")).map(|_| 1),
        (None, None) => Ok(0),
    }
}

fn distinct_keys(keys: &[Value], path: &str) -> Result<usize> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        let item = format!("{path}[{i}]");
        if let Some(first) = seen.insert(non_empty_key(key, &item)?, i) {
            return Err(Error::validation(&item, format!("{item} repeats {path}[{first}]; each key must be distinct")));
        }
    }
    Ok(keys.len())
}

fn non_empty_key<'a>(key: &'a Value, path: &str) -> Result<&'a str> {
    match key {
        Value::String(s) if !s.is_empty() => Ok(s),
        Value::String(_) => Err(Error::validation(path, format!("{path} must be a non-empty string, got an empty string"))),
        other => Err(invalid_redacted(path, "a non-empty string", Some(other))),
    }
}

fn models<'a>(obj: &'a Map<String, Value>, path: &str) -> Result<Option<Vec<&'a str>>> {
    match present(obj.get("models")) {
        None => Ok(None),
        Some(Value::Array(items)) => items.iter().enumerate().map(|(i, v)| name_value(v, &format!("{path}[{i}]"))).collect::<Result<_>>().map(Some),
        Some(other) => Err(invalid(path, "an array of model names", Some(other))),
    }
}

// ---------------------------------------------------------------------------------------
// Routes

/// Reads both forms, which may be mixed: `routing.rules` (seed form) is a list of rules that
/// each name their virtual model; every other key of `routing` is a virtual model mapped to
/// its targets. Routes keep the order their names first appear in.
fn parse_routes<'a>(root: &'a Map<String, Value>, providers: &'a [Provider<'a>]) -> Result<Vec<Route<'a>>> {
    let routing = match present(root.get("routing")) {
        Some(Value::Object(r)) => r,
        other => return Err(invalid("routing", "an object", other)),
    };
    let mut routes = Vec::new();
    for (key, value) in routing {
        if key == RULES_KEY {
            parse_rules(value, providers, &mut routes)?;
        } else {
            parse_named_route(key, value, providers, &mut routes)?;
        }
    }
    if routes.is_empty() {
        return Err(Error::validation("routing", "routing must have at least one route"));
    }
    Ok(routes)
}

/// Seed form: `[{name, provider, model, weight?}]`, each rule one target of route `name`.
fn parse_rules<'a>(value: &'a Value, providers: &'a [Provider<'a>], routes: &mut Vec<Route<'a>>) -> Result<()> {
    let path = format!("routing.{RULES_KEY}");
    let rules = value.as_array().ok_or_else(|| invalid(&path, "an array of rules", Some(value)))?;
    for (i, rule) in rules.iter().enumerate() {
        let rule_path = format!("{path}[{i}]");
        let obj = rule.as_object().ok_or_else(|| invalid(&rule_path, "an object", Some(rule)))?;
        let name = required_name(obj, "name", &format!("{rule_path}.name"))?;
        add_target(routes, name, parse_target(obj, rule_path, providers)?);
    }
    Ok(())
}

/// Map form: `routing.<name>: [{provider, model, weight?}]`.
fn parse_named_route<'a>(name: &'a str, value: &'a Value, providers: &'a [Provider<'a>], routes: &mut Vec<Route<'a>>) -> Result<()> {
    if is_blank(name) {
        return Err(Error::validation("routing", format!("routing must not have a route with an empty name, got {name:?}")));
    }
    let path = format!("routing.{name}");
    let targets = value.as_array().ok_or_else(|| invalid(&path, "an array of targets", Some(value)))?;
    if targets.is_empty() {
        return Err(Error::validation(&path, format!("{path} must have at least one target")));
    }
    for (i, target) in targets.iter().enumerate() {
        let target_path = format!("{path}[{i}]");
        let obj = target.as_object().ok_or_else(|| invalid(&target_path, "an object", Some(target)))?;
        add_target(routes, name, parse_target(obj, target_path, providers)?);
    }
    Ok(())
}

/// `{provider, model, weight?}` (a rule has these too), checked against the providers.
fn parse_target<'a>(obj: &'a Map<String, Value>, path: String, providers: &'a [Provider<'a>]) -> Result<Target<'a>> {
    let f = Fields::new(obj, &path);
    let provider_name = required_name(obj, "provider", &f.path("provider"))?;
    let model = required_name(obj, "model", &f.path("model"))?;
    let weight = weight(&f)?;
    let provider = providers.iter().find(|p| p.name == provider_name).ok_or_else(|| {
        let field = f.path("provider");
        let known = providers.iter().map(|p| p.name).collect::<Vec<_>>().join(", ");
        Error::validation(&field, format!("{field} names unknown provider '{provider_name}' (known: {known})"))
    })?;
    if let Some(models) = &provider.models {
        if !models.contains(&model) {
            let field = f.path("model");
            let listed = if models.is_empty() { "none".to_string() } else { models.join(", ") };
            return Err(Error::validation(&field, format!("{field} '{model}' is not one of providers.{provider_name}.models ({listed})")));
        }
    }
    Ok(Target { provider, model, weight, path })
}

/// Appends `target` to route `name`, creating the route on first sight. The same provider and
/// model twice in one route is one target: the first keeps its place and gains the weight.
fn add_target<'a>(routes: &mut Vec<Route<'a>>, name: &'a str, target: Target<'a>) {
    let index = match routes.iter().position(|r| r.name == name) {
        Some(i) => i,
        None => {
            routes.push(Route { name, targets: Vec::new() });
            routes.len() - 1
        }
    };
    let targets = &mut routes[index].targets;
    match targets.iter_mut().find(|t| t.provider.name == target.provider.name && t.model == target.model) {
        // Saturating: two finite weights may sum past f64::MAX, and JSON has no infinity.
        Some(first) => first.weight = (first.weight + target.weight).min(f64::MAX),
        None => targets.push(target),
    }
}

fn weight(f: &Fields<'_>) -> Result<f64> {
    match present(f.obj.get("weight")) {
        None => Ok(DEFAULT_WEIGHT),
        Some(v) => match v.as_f64() {
            // `+ 0.0` turns -0 into 0.
            Some(w) if w.is_finite() && w >= 0.0 => Ok(w + 0.0),
            _ => Err(invalid(&f.path("weight"), "a non-negative number", Some(v))),
        },
    }
}

/// The configured `defaultRoute`, else the route named `default`, else the first route.
fn default_route<'a>(root: &'a Map<String, Value>, routes: &[Route<'a>]) -> Result<&'a str> {
    let known = |name: &str| routes.iter().any(|r| r.name == name);
    match present(root.get("defaultRoute")) {
        Some(v) => {
            let name = name_value(v, "defaultRoute")?;
            if !known(name) {
                let names = routes.iter().map(|r| r.name).collect::<Vec<_>>().join(", ");
                return Err(Error::validation("defaultRoute", format!("defaultRoute names unknown route '{name}' (known: {names})")));
            }
            Ok(name)
        }
        None if known("default") => Ok("default"),
        // `parse_routes` refuses a config without routes.
        None => routes.first().map(|r| r.name).ok_or_else(|| Error::validation("routing", "routing must have at least one route")),
    }
}

fn fallback(root: &Map<String, Value>) -> Result<&'static str> {
    match present(root.get("fallback")) {
        None => Ok(FALLBACKS[0]),
        Some(v) => FALLBACKS
            .iter()
            .find(|f| v.as_str() == Some(**f))
            .copied()
            .ok_or_else(|| invalid("fallback", "'none' or 'next-pipeline'", Some(v))),
    }
}

/// A name (virtual model, provider, model): a string with something besides whitespace.
fn name_value<'a>(v: &'a Value, path: &str) -> Result<&'a str> {
    match v {
        Value::String(s) if !is_blank(s) => Ok(s),
        other => Err(invalid(path, "a non-empty string", Some(other))),
    }
}

/// `obj[key]` as a name borrowed from the config. (`Fields::string` ties what it returns to
/// the lifetime of its path prefix, a local `String` here, and accepts blank names.)
fn required_name<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str> {
    optional_name(obj, key, path)?.ok_or_else(|| invalid(path, "a non-empty string", None))
}

fn optional_name<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a str>> {
    present(obj.get(key)).map(|v| name_value(v, path)).transpose()
}

fn is_blank(s: &str) -> bool {
    s.trim().is_empty()
}

// ---------------------------------------------------------------------------------------
// Expansion

/// One provider × target model × API key, and the routes that use it.
struct Pipeline<'a> {
    id: String,
    provider: &'a Provider<'a>,
    model: &'a str,
    key_index: usize,
    virtual_models: Vec<&'a str>,
}

/// The pipelines found so far (first-seen order) and the ids handed out, which must stay
/// unique: ids join names with `-`, and names may contain `-` themselves.
#[derive(Default)]
struct Expansion<'a> {
    pipelines: Vec<Pipeline<'a>>,
    by_id: HashMap<String, usize>,
    route_ids: HashSet<String>,
}

impl<'a> Expansion<'a> {
    /// The entries of one route: each target once per API key of its provider (once with
    /// index 0 for a key-less provider).
    fn route_entries(&mut self, route: &Route<'a>) -> Result<Vec<Value>> {
        let mut entries = Vec::new();
        for target in &route.targets {
            for key_index in 0..target.provider.keys.max(1) {
                let pipeline_id = self.pipeline(route.name, target, key_index)?;
                let route_id = format!("route-{}-{pipeline_id}", route.name);
                if !self.route_ids.insert(route_id.clone()) {
                    return Err(id_clash(target, "route id", &route_id));
                }
                entries.push(route_entry(route.name, target, key_index, route_id, pipeline_id));
            }
        }
        Ok(entries)
    }

    /// The id of the pipeline for `target` × `key_index`, created on first use; records that
    /// route `vm` uses it.
    fn pipeline(&mut self, vm: &'a str, target: &Target<'a>, key_index: usize) -> Result<String> {
        let provider = target.provider;
        let id = format!("{}-{}-{key_index}", provider.name, target.model);
        match self.by_id.get(&id) {
            Some(&i) => {
                let p = &mut self.pipelines[i];
                if p.provider.name != provider.name || p.model != target.model || p.key_index != key_index {
                    return Err(id_clash(target, "pipeline id", &id));
                }
                if !p.virtual_models.contains(&vm) {
                    p.virtual_models.push(vm);
                }
            }
            None => {
                self.by_id.insert(id.clone(), self.pipelines.len());
                self.pipelines.push(Pipeline { id: id.clone(), provider, model: target.model, key_index, virtual_models: vec![vm] });
            }
        }
        Ok(id)
    }

    fn pipelines_json(&self) -> Map<String, Value> {
        self.pipelines.iter().map(|p| (p.id.clone(), pipeline_spec(p))).collect()
    }
}

fn id_clash(target: &Target<'_>, what: &str, id: &str) -> Error {
    Error::validation(
        &target.path,
        format!(
            "{} (provider '{}', model '{}') gives {what} '{id}', which another route target already has; rename a provider, model or route so the '-'-joined ids differ",
            target.path, target.provider.name, target.model
        ),
    )
}

fn route_entry(vm: &str, target: &Target<'_>, key_index: usize, route_id: String, pipeline_id: String) -> Value {
    json!({
        "routeId": route_id,
        "routeName": vm,
        "virtualModel": vm,
        "provider": target.provider.name,
        "targetModel": target.model,
        "apiKeyIndex": key_index,
        "pipelineId": pipeline_id,
        "weight": number(target.weight),
        "isActive": true,
        "health": "healthy",
    })
}

fn pipeline_spec(p: &Pipeline<'_>) -> Value {
    json!({
        "pipelineId": p.id,
        "provider": p.provider.name,
        "type": p.provider.kind,
        "endpoint": p.provider.endpoint,
        "targetModel": p.model,
        "apiKeyIndex": p.key_index,
        "hasApiKey": p.provider.keys > 0,
        "virtualModels": p.virtual_models,
        "providerConfig": p.provider.rest,
    })
}

/// A whole weight as a JSON integer (`2`, not `2.0`), so JS and Rust readers agree.
fn number(w: f64) -> Value {
    const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0; // 2^53
    if w.fract() == 0.0 && w.abs() <= EXACT_INTEGERS {
        Value::from(w as i64)
    } else {
        Value::from(w)
    }
}
