//! How deeply JSON text nests, measured without recursion.
//!
//! serde_json refuses to build values nested deeper than 128 levels, so a
//! body past that cannot be turned into a `Value` anywhere downstream (the
//! gateway's `?wait` answer, a listener's parser). Bodies are checked
//! against [`MAX_JSON_DEPTH`] where they enter: commands in
//! [`Envelope::validate`](crate::envelope::Envelope::validate), events as the
//! host takes them from a guest.

/// Deepest nesting of arrays and objects a command or event body may have.
pub const MAX_JSON_DEPTH: usize = 64;

/// The deepest nesting of `[` and `{` in `text`, skipping string contents.
///
/// One pass, constant memory: safe on any input, JSON or not (for text that
/// is not JSON the number is meaningless, but finite).
pub fn nesting_depth(text: &str) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Refuses `text` if it nests deeper than `max`, saying how deep it went.
pub fn check_depth(text: &str, max: usize) -> Result<(), String> {
    let depth = nesting_depth(text);
    if depth > max {
        return Err(format!(
            "body nests {depth} levels deep, over the limit of {max}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator, so the property test needs no crate.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, below: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % below
        }
    }

    /// A random JSON value nested exactly `depth` levels, with strings that
    /// hold brackets and escapes to mislead a careless scanner.
    fn generate(rng: &mut Lcg, depth: usize) -> String {
        let leaf = |rng: &mut Lcg| match rng.next(5) {
            0 => "1".to_owned(),
            1 => r#""[{\"]}\\""#.to_owned(),
            2 => "null".to_owned(),
            3 => r#""}}}]]]""#.to_owned(),
            _ => "true".to_owned(),
        };
        if depth == 0 {
            return leaf(rng);
        }
        // Iteratively wrap, so the generator itself does not recurse.
        let mut text = leaf(rng);
        for level in 0..depth {
            let siblings: Vec<String> = (0..rng.next(3)).map(|_| leaf(rng)).collect();
            let mut items = siblings;
            let at = rng.next(items.len() as u64 + 1) as usize;
            items.insert(at, text);
            text = if (level + rng.next(2) as usize).is_multiple_of(2) {
                format!("[{}]", items.join(","))
            } else {
                let fields: Vec<String> = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| format!(r#""k{{{i}[": {v}"#))
                    .collect();
                format!("{{{}}}", fields.join(","))
            };
        }
        text
    }

    #[test]
    fn depth_of_generated_shapes_is_exact() {
        let mut rng = Lcg(18);
        for round in 0..2_000 {
            let depth = rng.next(if round % 10 == 0 { 400 } else { 80 }) as usize;
            let text = generate(&mut rng, depth);
            assert_eq!(nesting_depth(&text), depth, "{text}");
            // What serde_json can parse, it agrees with.
            if depth < 100 {
                assert!(
                    serde_json::from_str::<serde_json::Value>(&text).is_ok(),
                    "{text}"
                );
            }
            assert_eq!(
                check_depth(&text, MAX_JSON_DEPTH).is_ok(),
                depth <= MAX_JSON_DEPTH,
                "depth {depth}"
            );
        }
    }

    #[test]
    fn survives_what_is_not_json() {
        for text in [
            "",
            "]]]]",
            "\"unterminated [[[",
            "\\",
            "[[[",
            "}{",
            "\"\\\"",
        ] {
            let _ = nesting_depth(text);
        }
        assert_eq!(nesting_depth(&"[".repeat(1_000_000)), 1_000_000);
        assert_eq!(nesting_depth(r#"["\\", ["#), 2);
    }
}
