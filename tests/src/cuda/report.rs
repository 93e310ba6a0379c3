//! Reading report fields (panicking with the field's name when one has the wrong type) and the
//! ground truth's call counters.

use std::collections::BTreeMap;

use serde_json::Value;

use super::apis::api_family;

/// "0x1f" → 31.
pub fn parse_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// A count from a report field, panicking with the field's name.
pub fn count(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what} is not a count: {v}"))
}

/// A number from a report field, panicking with the field's name.
pub fn num(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

pub fn array<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what} is not an array: {v}"))
}

/// `cuda.apis[]` entry of `api`, if listed.
pub fn api<'a>(cuda: &'a Value, api: &str) -> Option<&'a Value> {
    array(&cuda["apis"], "cuda.apis")
        .iter()
        .find(|a| a["api"] == api)
}

/// Calls of `api` (0 when not listed).
pub fn api_calls(cuda: &Value, name: &str) -> u64 {
    api(cuda, name).map_or(0, |a| count(&a["calls"], &format!("apis[{name}].calls")))
}

/// Calls per family as the stub libraries counted them in the counted phase.
pub fn truth_calls(truth: &Value) -> BTreeMap<&'static str, u64> {
    let mut calls = BTreeMap::new();
    for (symbol, n) in truth["stub_calls"].as_object().expect("truth stub_calls") {
        if let Some(family) = api_family(symbol) {
            *calls.entry(family).or_default() += n.as_u64().expect("count");
        }
    }
    calls
}
