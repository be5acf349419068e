//! AMQP topic patterns: which events a subscription or a reactor's
//! pattern matches. Written once, here, with no dependencies: the guest
//! SDK (`sdk/src/lib.rs`) compiles this same file for its reactors'
//! `on(pattern, …)`.

/// Whether the AMQP topic `pattern` matches `routing_key` (or a whole
/// topic): both are `.`-separated segments; in the pattern `*` matches
/// exactly one segment and `#` zero or more.
///
/// Linear in the pattern's length times the key's (no backtracking), so a
/// pattern like `#.#.#.a` cannot make it slow: the host matches every
/// event against patterns that components and clients choose.
///
/// Examples (the tests below hold many more): `thread.*` matches
/// `thread.started` but not `thread.quantum.expired`; `thread.#` matches
/// both, and `thread` itself; `#.thread.started` matches
/// `session.s1.thread.started`.
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    let key: Vec<&str> = routing_key.split('.').collect();
    // reach[j]: the pattern's segments so far can consume exactly the
    // first j segments of the key.
    let mut reach = vec![false; key.len() + 1];
    reach[0] = true;
    for seg in pattern.split('.') {
        let mut next = vec![false; key.len() + 1];
        match seg {
            // Zero or more: every position at or after a reachable one.
            "#" => {
                let mut on = false;
                for (j, r) in reach.iter().enumerate() {
                    on |= *r;
                    next[j] = on;
                }
            }
            _ => {
                for (j, k) in key.iter().enumerate() {
                    if reach[j] && (seg == "*" || seg == *k) {
                        next[j + 1] = true;
                    }
                }
            }
        }
        reach = next;
    }
    reach[key.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqp_semantics() {
        let cases = [
            ("#", "a.b.c", true),
            ("#", "a", true),
            ("a.#", "a", true),
            ("a.#", "a.b.c", true),
            ("a.#", "b.a", false),
            ("a.*", "a.b", true),
            ("a.*", "a", false),
            ("a.*", "a.b.c", false),
            ("a.*.c", "a.b.c", true),
            ("a.*.c", "a.b.d", false),
            ("#.c", "a.b.c", true),
            ("#.c", "c", true),
            ("#.c", "c.d", false),
            ("#.b.#", "a.b.c", true),
            ("#.b.#", "b", true),
            ("#.b.#", "a.c", false),
            ("a.#.c", "a.c", true),
            ("a.#.c", "a.x.y.c", true),
            ("a.#.#.c", "a.c", true),
            ("*.#", "a", true),
            ("*.*", "a", false),
            ("a.b", "a.b", true),
            ("a.b", "a.bc", false),
            ("a.b", "a.b.c", false),
            ("thread.quantum.expired", "thread.quantum.expired", true),
            ("thread.*", "thread.quantum.expired", false),
            ("thread.*.expired", "thread.quantum.expired", true),
            ("session.s1.#", "session.s1.thread.started", true),
            ("session.s1.#", "session.s2.x.y", false),
            ("#.thread.started", "thread.started", true),
            ("*.error", "thread.error", true),
            ("*.error", "session.s1.thread.error", false),
            ("#.b.#", "a.b.c", true),
        ];
        for (p, k, want) in cases {
            assert_eq!(topic_matches(p, k), want, "{p} vs {k}");
        }
    }

    #[test]
    fn many_hashes_stay_fast() {
        // Exponential with naive backtracking (60 `#` against 60 segments
        // would not finish); here a few thousand steps.
        let pattern = vec!["#"; 60].join(".") + ".z";
        let key = vec!["a"; 60].join(".");
        assert!(!topic_matches(&pattern, &key));
        assert!(topic_matches(&pattern, &(key + ".z")));
        let hostile = "#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.x";
        let long = vec!["a"; 200].join(".");
        assert!(!topic_matches(hostile, &long));
    }
}
