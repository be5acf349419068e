//! AMQP topic patterns: which routing keys a reactor's `on(pattern, …)`
//! matches.

/// Whether the AMQP topic `pattern` matches `routing_key`: both are
/// `.`-separated segments; in the pattern `*` matches exactly one segment
/// and `#` zero or more.
///
/// Linear in the pattern's length times the key's (no backtracking), so a
/// pattern like `#.#.#.a` cannot make it slow.
///
/// ```
/// use parallel_you_sdk::topic_matches;
/// assert!(topic_matches("thread.*", "thread.started"));
/// assert!(!topic_matches("thread.*", "thread.quantum.expired"));
/// assert!(topic_matches("thread.#", "thread.quantum.expired"));
/// assert!(topic_matches("thread.#", "thread"));
/// assert!(topic_matches("#", "anything.at.all"));
/// ```
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
        ];
        for (p, k, want) in cases {
            assert_eq!(topic_matches(p, k), want, "{p} vs {k}");
        }
    }

    #[test]
    fn many_hashes_stay_fast() {
        // Exponential with naive backtracking; here a few thousand steps.
        let pattern = vec!["#"; 60].join(".") + ".z";
        let key = vec!["a"; 60].join(".");
        assert!(!topic_matches(&pattern, &key));
        assert!(topic_matches(&pattern, &(key + ".z")));
    }
}
