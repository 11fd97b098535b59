//! Steps 2 and 3 of loading: the `ZONELOG_*` environment overrides, and
//! deserializing with the field path tracked.

use std::collections::BTreeMap;

use super::{invalid, Config, ConfigError};

/// Environment variables with these prefixes belong to tools around zonelog
/// (the dev zone script, test settings), not to the configuration.
const NON_CONFIG_ENV_PREFIXES: &[&str] = &["ZONELOG_DEV_", "ZONELOG_CEPH_", "ZONELOG_SKIP_"];
/// Nor do these: `ZONELOG_LOG` is the log filter of one run (its section's
/// fields, `ZONELOG_LOG__LEVEL` etc., are configuration), `ZONELOG_CONFIG`
/// the config file's path.
const NON_CONFIG_ENV_VARS: &[&str] = &["ZONELOG_LOG", "ZONELOG_CONFIG"];
const ENV_PREFIX: &str = "ZONELOG_";

/// Lays `ZONELOG_A__B=v` onto `a.b`; returns which paths came from which
/// variable, so a type error can name the variable.
pub(super) fn apply_env_overrides(
    tree: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut applied = BTreeMap::new();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .filter(|(k, _)| !NON_CONFIG_ENV_PREFIXES.iter().any(|p| k.starts_with(p)))
        .filter(|(k, _)| !NON_CONFIG_ENV_VARS.contains(&k.as_str()))
        .collect();
    vars.sort();
    for (var, raw) in vars {
        let path: Vec<String> = var[ENV_PREFIX.len()..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var,
                reason: "empty path segment; separate sections with a double underscore, e.g. ZONELOG_INDEX__SHARDS".into(),
            });
        }
        let mut table = &mut *tree;
        for segment in &path[..path.len() - 1] {
            let entry = table
                .entry(segment.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(ConfigError::Env {
                        var,
                        reason: format!("{segment} is not a section"),
                    })
                }
            };
        }
        let leaf = path.last().cloned().unwrap_or_default();
        table.insert(leaf, env_value(&raw));
        applied.insert(path.join("."), var);
    }
    Ok(applied)
}

/// Numbers, booleans and arrays are read as TOML; anything else is a string.
/// (A secret that looks like a number is retried as a string, see below.)
fn env_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => match t.remove("v") {
            Some(
                v @ (toml::Value::Integer(_)
                | toml::Value::Float(_)
                | toml::Value::Boolean(_)
                | toml::Value::Array(_)
                | toml::Value::String(_)),
            ) => v,
            _ => toml::Value::String(raw.to_string()),
        },
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

pub(super) fn deserialize_tracking_path(
    mut tree: toml::Table,
    overrides: &BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    // Each round either succeeds, fails for good, or turns one
    // env-provided non-string into a string and tries again.
    for _ in 0..=overrides.len() {
        let value = toml::Value::Table(tree.clone());
        match serde_path_to_error::deserialize::<_, Config>(value) {
            Ok(config) => return Ok(config),
            Err(err) => {
                let field = err.path().to_string();
                let message = first_line(&err.inner().to_string());
                let from_env = overrides.get(&field).or_else(|| {
                    let nested = format!("{field}.");
                    overrides
                        .iter()
                        .find(|(path, _)| path.starts_with(&nested))
                        .map(|(_, var)| var)
                });
                if let Some(var) = from_env {
                    if message.contains("expected a string") && set_as_string(&mut tree, &field) {
                        continue;
                    }
                    return Err(ConfigError::Env {
                        var: var.clone(),
                        reason: format!("{field}: {message}"),
                    });
                }
                let field = if field == "." {
                    "(top level)".into()
                } else {
                    field
                };
                return Err(invalid(field, message));
            }
        }
    }
    Err(invalid(
        "(top level)",
        "environment overrides could not be applied",
    ))
}

fn first_line(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn set_as_string(tree: &mut toml::Table, dotted: &str) -> bool {
    let parts: Vec<&str> = dotted.split('.').collect();
    let mut table = tree;
    for part in &parts[..parts.len() - 1] {
        match table.get_mut(*part) {
            Some(toml::Value::Table(t)) => table = t,
            _ => return false,
        }
    }
    let Some(slot) = parts.last().and_then(|leaf| table.get_mut(*leaf)) else {
        return false;
    };
    let text = match slot {
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        _ => return false,
    };
    *slot = toml::Value::String(text);
    true
}
