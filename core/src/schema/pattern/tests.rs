use super::Pattern;

fn matches(p: &str, s: &str) -> bool {
    Pattern::new(p).unwrap().is_match(s)
}

#[test]
fn the_bundled_patterns() {
    let id = "^[A-Za-z0-9_-]{1,64}$";
    assert!(matches(id, "abc_DEF-09"));
    assert!(!matches(id, ""));
    assert!(!matches(id, "a b"));
    assert!(matches(id, &"a".repeat(64)));
    assert!(!matches(id, &"a".repeat(65)));
    let quantum = "^ *([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)? *$";
    for ok in ["", "25m", "1h30m", "300ms", " 1h ", "0m"] {
        assert!(matches(quantum, ok), "{ok}");
    }
    for bad in ["1x", "30m1h", "1h 30m", "soon"] {
        assert!(!matches(quantum, bad), "{bad}");
    }
}

#[test]
fn search_semantics_and_anchors() {
    assert!(matches("b", "abc"));
    assert!(!matches("^b", "abc"));
    assert!(!matches("a$", "a\n"));
    assert!(matches("a|^z", "xa"));
    assert!(matches("", "anything"));
}

#[test]
fn classes_escapes_and_quantifiers() {
    assert!(matches(r"^\d{3}-\w+$", "123-ab_c"));
    assert!(!matches(r"^\d{3}$", "12a"));
    assert!(matches(r"^[^\s]+$", "no-spaces"));
    assert!(!matches(r"^[^\s]+$", "a space"));
    assert!(matches(r"^[\D]$", "x"));
    assert!(!matches(r"^[\D]$", "5"));
    assert!(matches(r"^a.c$", "abc"));
    assert!(!matches(r"^a.c$", "a\nc"));
    assert!(matches(r"^\u00e9+?$", "éé"));
    assert!(matches(r"^(?:ab|cd){2,}$", "abcdab"));
    assert!(!matches(r"^(?:ab|cd){2,}$", "ab"));
    assert!(matches(r"^[a\-z]+$", "-a-z"));
    assert!(matches(r"^[-a]+$", "-a"));
    assert!(matches(r"^\.$", "."));
}

#[test]
fn no_exponential_blowup() {
    let p = Pattern::new("^(a+)+$").unwrap();
    let mut s = "a".repeat(5000);
    s.push('b');
    assert!(!p.is_match(&s));
}

#[test]
fn outside_the_subset_is_refused() {
    for p in [
        "(?=a)", "(?!a)", r"\bword", r"(a)\1", "a**", "*a", "(a", "a)", "[a", "a{2,1}", "a{5000}",
        "[z-a]", r"\p{L}", "^*",
    ] {
        assert!(Pattern::new(p).is_err(), "{p}");
    }
    assert!(
        Pattern::new("(?:[a-z]{1,1000}){1,1000}").is_err(),
        "too large"
    );
}
