//! A value checked against a [`Node`]: the violations found, each with its
//! JSON pointer and a message naming the value as the SDKs do.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

use super::json::{compare, escape, json_eq};
use super::node::{Node, Rules};
use super::{Violation, MAX_VIOLATIONS};

/// The violations `node` finds in `body` (at most [`MAX_VIOLATIONS`]).
pub(super) fn violations(node: &Node, body: &Value) -> Vec<Violation> {
    let mut checker = Checker::default();
    checker.check(node, body);
    checker.out
}

#[derive(Debug, Clone)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

#[derive(Default)]
struct Checker<'a> {
    path: Vec<Seg<'a>>,
    out: Vec<Violation>,
}

impl<'a> Checker<'a> {
    fn full(&self) -> bool {
        self.out.len() >= MAX_VIOLATIONS
    }

    /// `` `body.tags[0]` ``: how the SDKs have always named a value.
    fn name(&self) -> String {
        let mut s = String::from("`body");
        for seg in &self.path {
            match seg {
                Seg::Key(k) => {
                    s.push('.');
                    s.push_str(k);
                }
                Seg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s.push('`');
        s
    }

    fn pointer(&self) -> String {
        self.path
            .iter()
            .map(|seg| match seg {
                Seg::Key(k) => format!("/{}", escape(k)),
                Seg::Index(i) => format!("/{i}"),
            })
            .collect()
    }

    fn fail(&mut self, what: impl std::fmt::Display) {
        if !self.full() {
            let message = format!("{} {what}", self.name());
            self.out.push(Violation {
                path: self.pointer(),
                message,
            });
        }
    }

    /// The violations `node` finds in `v`, without reporting them.
    fn trial(&self, node: &Node, v: &'a Value) -> Vec<Violation> {
        let mut sub = Checker {
            path: self.path.clone(),
            out: Vec::new(),
        };
        sub.check(node, v);
        sub.out
    }

    fn check(&mut self, node: &Node, v: &'a Value) {
        match node {
            Node::Any => {}
            Node::Never => self.fail("is not allowed"),
            Node::Rules(r) => self.rules(r, v),
        }
    }

    fn rules(&mut self, r: &Rules, v: &'a Value) {
        if !r.types.is_empty() && !r.types.iter().any(|t| t.accepts(v)) {
            let names: Vec<_> = r.types.iter().map(|t| t.name()).collect();
            self.fail(format_args!(
                "must be of type {}, not {}",
                names.join(" or "),
                describe(v)
            ));
            return;
        }
        if let Some(allowed) = &r.allowed {
            if !allowed.iter().any(|a| json_eq(a, v)) {
                let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
                self.fail(format_args!("must be one of {}", list.join(", ")));
            }
        }
        if let Some(c) = &r.constant {
            if !json_eq(c, v) {
                self.fail(format_args!("must be {c}"));
            }
        }
        match v {
            Value::String(s) => self.string(r, s),
            Value::Number(n) => self.number(r, n),
            Value::Array(items) => self.array(r, items),
            Value::Object(map) => self.object(r, map),
            Value::Null | Value::Bool(_) => {}
        }
        for sub in &r.all_of {
            self.check(sub, v);
        }
        if !r.any_of.is_empty() {
            let failures: Vec<_> = r.any_of.iter().map(|s| self.trial(s, v)).collect();
            if failures.iter().all(|f| !f.is_empty()) {
                self.none_matched(&failures);
            }
        }
        if !r.one_of.is_empty() {
            let failures: Vec<_> = r.one_of.iter().map(|s| self.trial(s, v)).collect();
            match failures.iter().filter(|f| f.is_empty()).count() {
                0 => self.none_matched(&failures),
                1 => {}
                n => self.fail(format_args!(
                    "matches {n} of the allowed forms, and must match exactly one"
                )),
            }
        }
    }

    fn none_matched(&mut self, failures: &[Vec<Violation>]) {
        let reasons: Vec<&str> = failures
            .iter()
            .filter_map(|f| f.first().map(|v| v.message.as_str()))
            .collect();
        self.fail(format_args!(
            "matches none of the allowed forms: {}",
            reasons.join("; or ")
        ));
    }

    fn string(&mut self, r: &Rules, s: &str) {
        let chars = s.chars().count() as u64;
        if let Some(min) = r.min_length {
            if chars < min {
                self.fail(format_args!("must be at least {min} characters"));
            }
        }
        if let Some(max) = r.max_length {
            if chars > max {
                self.fail(format_args!("must be at most {max} characters"));
            }
        }
        if let Some(p) = &r.pattern {
            if !p.is_match(s) {
                self.fail(format_args!("must match the pattern `{}`", p.source()));
            }
        }
    }

    fn number(&mut self, r: &Rules, n: &Number) {
        let bounds = [
            (&r.minimum, Ordering::Less, "at least", false),
            (&r.exclusive_minimum, Ordering::Less, "greater than", true),
            (&r.maximum, Ordering::Greater, "at most", false),
            (&r.exclusive_maximum, Ordering::Greater, "less than", true),
        ];
        for (bound, wrong, says, exclusive) in bounds {
            if let Some(b) = bound {
                let ord = compare(n, b);
                if ord == Some(wrong) || (exclusive && ord == Some(Ordering::Equal)) {
                    self.fail(format_args!("must be {says} {b}"));
                }
            }
        }
    }

    fn array(&mut self, r: &Rules, items: &'a [Value]) {
        let len = items.len() as u64;
        if let Some(min) = r.min_items {
            if len < min {
                self.fail(format_args!("must have at least {min} items"));
            }
        }
        if let Some(max) = r.max_items {
            if len > max {
                self.fail(format_args!("must have at most {max} items"));
            }
        }
        if let Some(item) = &r.items {
            for (i, v) in items.iter().enumerate() {
                if self.full() {
                    return;
                }
                self.path.push(Seg::Index(i));
                self.check(item, v);
                self.path.pop();
            }
        }
    }

    fn object(&mut self, r: &Rules, map: &'a Map<String, Value>) {
        for name in &r.required {
            if !map.contains_key(name) {
                self.fail(format_args!("is missing the field `{name}`"));
            }
        }
        let len = map.len() as u64;
        if let Some(min) = r.min_properties {
            if len < min {
                self.fail(format_args!("must have at least {min} fields"));
            }
        }
        if let Some(max) = r.max_properties {
            if len > max {
                self.fail(format_args!("must have at most {max} fields"));
            }
        }
        if let Some(additional) = &r.additional {
            for (name, v) in map {
                if self.full() {
                    return;
                }
                if r.properties.iter().any(|(p, _)| p == name) {
                    continue;
                }
                if matches!(additional, Node::Never) {
                    self.fail(format_args!("has an unknown field `{name}`"));
                } else {
                    self.path.push(Seg::Key(name));
                    self.check(additional, v);
                    self.path.pop();
                }
            }
        }
        for (name, sub) in &r.properties {
            if let Some((key, v)) = map.get_key_value(name) {
                if self.full() {
                    return;
                }
                self.path.push(Seg::Key(key));
                self.check(sub, v);
                self.path.pop();
            }
        }
    }
}

/// A value as a type error names it: scalars as written (shortened),
/// containers by kind.
fn describe(v: &Value) -> String {
    match v {
        Value::Object(_) => "an object".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        v => {
            let text = v.to_string();
            if text.chars().count() > 40 {
                format!("{}…", text.chars().take(40).collect::<String>())
            } else {
                text
            }
        }
    }
}
