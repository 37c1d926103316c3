//! What a flag serves to one context: the small, pure evaluation the simulator's
//! page and the tests use to say "every context gets value V". LaunchDarkly's
//! order: targeting off → the off variation; else individual targets, then the
//! first rule whose clauses all match, then the fallthrough.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::model::{SimClause, SimFlag, SimFlagConfig, SimRollout, SimServe};

/// A context to evaluate for: a kind, a key and attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct SimContext {
    pub kind: String,
    pub key: String,
    pub attributes: BTreeMap<String, Value>,
}

impl SimContext {
    /// A context of kind `user`.
    pub fn user(key: &str) -> Self {
        Self::new("user", key)
    }

    pub fn new(kind: &str, key: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            key: key.to_owned(),
            attributes: BTreeMap::new(),
        }
    }

    /// The same context with attribute `name` set.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.attributes.insert(name.to_owned(), value.into());
        self
    }

    /// `key` and `kind` are attributes too, as in LaunchDarkly's clauses.
    fn attribute(&self, name: &str) -> Option<Value> {
        match name {
            "key" => Some(Value::String(self.key.clone())),
            "kind" => Some(Value::String(self.kind.clone())),
            _ => self.attributes.get(name).cloned(),
        }
    }
}

/// Why a context got its variation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalReason {
    Off,
    TargetMatch,
    /// The index of the rule that matched.
    RuleMatch(usize),
    Fallthrough,
}

/// The variation a context gets, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub variation: usize,
    /// The variation's value (`null` if the index is out of range).
    pub value: Value,
    pub reason: EvalReason,
}

/// Evaluates `flag` with its configuration in one environment for `context`.
pub fn evaluate(flag: &SimFlag, config: &SimFlagConfig, context: &SimContext) -> Evaluation {
    let (variation, reason) = choose(flag, config, context);
    let value = flag
        .variations
        .get(variation)
        .map(|v| v.value.clone())
        .unwrap_or(Value::Null);
    Evaluation {
        variation,
        value,
        reason,
    }
}

fn choose(flag: &SimFlag, config: &SimFlagConfig, context: &SimContext) -> (usize, EvalReason) {
    if !config.on {
        return (config.off_variation, EvalReason::Off);
    }
    let targeted = config
        .targets
        .iter()
        .find(|t| t.context_kind == context.kind && t.values.contains(&context.key));
    if let Some(target) = targeted {
        return (target.variation, EvalReason::TargetMatch);
    }
    for (index, rule) in config.rules.iter().enumerate() {
        if rule.clauses.iter().all(|c| clause_matches(c, context)) {
            return (
                serve(&flag.key, &rule.serve, context),
                EvalReason::RuleMatch(index),
            );
        }
    }
    (
        serve(&flag.key, &config.fallthrough(), context),
        EvalReason::Fallthrough,
    )
}

fn serve(flag_key: &str, serve: &SimServe, context: &SimContext) -> usize {
    match serve {
        SimServe::Variation(index) => *index,
        SimServe::Rollout(rollout) => bucket(flag_key, rollout, context),
    }
}

/// A deterministic bucket in 0..100,000 from the flag key and the bucketed
/// attribute, then the variation whose cumulative weight covers it.
fn bucket(flag_key: &str, rollout: &SimRollout, context: &SimContext) -> usize {
    let by = rollout.bucket_by.as_deref().unwrap_or("key");
    let value = match context.attribute(by) {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let digest = Sha256::digest(format!("{flag_key}.{value}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let point = u64::from_be_bytes(first) % 100_000;
    let mut cumulative = 0u64;
    for (variation, weight) in &rollout.variations {
        cumulative += u64::from(*weight);
        if point < cumulative {
            return *variation;
        }
    }
    rollout.variations.last().map_or(0, |(v, _)| *v)
}

fn clause_matches(clause: &SimClause, context: &SimContext) -> bool {
    if clause.context_kind != context.kind {
        return false;
    }
    let Some(actual) = context.attribute(&clause.attribute) else {
        return false;
    };
    let candidates = match actual {
        Value::Array(items) => items,
        one => vec![one],
    };
    let matched = candidates
        .iter()
        .any(|a| clause.values.iter().any(|v| op_matches(&clause.op, a, v)));
    matched != clause.negate
}

fn op_matches(op: &str, actual: &Value, wanted: &Value) -> bool {
    let strings = actual.as_str().zip(wanted.as_str());
    match op {
        "in" => actual == wanted,
        "startsWith" => strings.is_some_and(|(a, w)| a.starts_with(w)),
        "endsWith" => strings.is_some_and(|(a, w)| a.ends_with(w)),
        "contains" => strings.is_some_and(|(a, w)| a.contains(w)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{SimFlagState, SimRule, SimTarget};
    use super::*;

    fn config(on: bool) -> SimFlagConfig {
        SimFlagConfig::from(SimFlagState {
            on,
            fallthrough_variation: 2,
            off_variation: 0,
        })
    }

    #[test]
    fn targets_come_before_rules_and_rules_before_the_fallthrough() {
        let flag = SimFlag::multivariate("f", "F", &["a", "b", "c"]);
        let mut c = config(true);
        c.targets.push(SimTarget {
            context_kind: "user".into(),
            variation: 0,
            values: vec!["alice".into()],
        });
        c.rules.push(SimRule {
            id: "r".into(),
            description: None,
            clauses: vec![SimClause {
                id: "c".into(),
                context_kind: "user".into(),
                attribute: "email".into(),
                op: "endsWith".into(),
                values: vec!["@beta.example".into()],
                negate: false,
            }],
            serve: SimServe::Variation(1),
            track_events: false,
        });
        let alice = SimContext::user("alice").with("email", "alice@beta.example");
        let bob = SimContext::user("bob").with("email", "bob@beta.example");
        let carol = SimContext::user("carol");
        assert_eq!(evaluate(&flag, &c, &alice).reason, EvalReason::TargetMatch);
        assert_eq!(evaluate(&flag, &c, &alice).value, "a");
        assert_eq!(evaluate(&flag, &c, &bob).reason, EvalReason::RuleMatch(0));
        assert_eq!(evaluate(&flag, &c, &bob).value, "b");
        assert_eq!(evaluate(&flag, &c, &carol).value, "c");
        // Another kind with the same key is not the targeted user.
        let org = SimContext::new("organization", "alice");
        assert_eq!(evaluate(&flag, &c, &org).reason, EvalReason::Fallthrough);
        // Off: everyone gets the off variation, targets or not.
        c.on = false;
        assert_eq!(evaluate(&flag, &c, &alice).value, "a");
        assert_eq!(evaluate(&flag, &c, &carol).reason, EvalReason::Off);
    }

    #[test]
    fn a_rollout_splits_contexts_by_weight_and_is_stable() {
        let flag = SimFlag::boolean("f", "F");
        let mut c = config(true);
        c.fallthrough_rollout = Some(SimRollout {
            variations: vec![(0, 50_000), (1, 50_000)],
            bucket_by: None,
            context_kind: None,
        });
        let trues = (0..1000)
            .filter(|i| evaluate(&flag, &c, &SimContext::user(&format!("u{i}"))).variation == 0)
            .count();
        assert!((400..600).contains(&trues), "{trues} of 1000");
        let once = evaluate(&flag, &c, &SimContext::user("same"));
        assert_eq!(once, evaluate(&flag, &c, &SimContext::user("same")));
    }
}
