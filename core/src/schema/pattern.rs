//! The `pattern` keyword: a small subset of ECMA-262 regular expressions,
//! matched without backtracking.
//!
//! Supported: literal characters; `.` (any character but a line
//! terminator); classes `[a-z_]`, `[^…]`; the escapes `\d \D \w \W \s \S`,
//! `\n \r \t \f \v \0`, `\uXXXX` and an escaped punctuation character
//! (`\.`, `\-`, `\\`…); groups `(…)`, `(?:…)`, `(?<name>…)` (nothing is
//! captured); alternation `|`; the quantifiers `* + ? {n} {n,} {n,m}` and
//! their lazy forms (laziness cannot change whether a string matches);
//! the anchors `^` and `$` (without the `m` flag: start and end of the whole
//! string). Anything else — lookaround, backreferences, `\b`, flags — is
//! refused when the schema is compiled.
//!
//! As JSON Schema says, a pattern is not implicitly anchored: it must match
//! somewhere in the string. Matching simulates the automaton (Pike VM), so
//! it takes time proportional to the string's length times the program's
//! size, never exponential; counted repetitions are expanded, and programs
//! past [`MAX_PROGRAM`] instructions are refused.

use std::fmt;

/// The most instructions a compiled pattern may have.
pub const MAX_PROGRAM: usize = 2000;
/// The largest bound a counted repetition may have.
const MAX_REPEAT: u32 = 1000;

/// A compiled `pattern`.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    program: Vec<Inst>,
    /// Every alternative starts with `^`: no match can start after
    /// position 0, so matching stops as soon as no thread is alive.
    anchored: bool,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

#[derive(Debug, Clone)]
enum Node {
    Empty,
    Class(Class),
    Start,
    End,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

/// A set of characters: `items` united, then inverted if `negated`.
#[derive(Debug, Clone)]
struct Class {
    items: Vec<Item>,
    negated: bool,
}

#[derive(Debug, Clone)]
enum Item {
    Range(char, char),
    /// A negated escape inside a class (`[\D]`).
    Not(&'static [(char, char)]),
}

const DIGIT: &[(char, char)] = &[('0', '9')];
const WORD: &[(char, char)] = &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
const SPACE: &[(char, char)] = &[
    ('\t', '\r'),
    (' ', ' '),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
    ('\u{feff}', '\u{feff}'),
];
const LINE_TERMINATORS: &[(char, char)] = &[('\n', '\n'), ('\r', '\r'), ('\u{2028}', '\u{2029}')];

fn in_ranges(ranges: &[(char, char)], c: char) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi)
}

impl Class {
    fn of(ranges: &'static [(char, char)], negated: bool) -> Self {
        Class {
            items: ranges.iter().map(|&(a, b)| Item::Range(a, b)).collect(),
            negated,
        }
    }

    fn single(c: char) -> Self {
        Class {
            items: vec![Item::Range(c, c)],
            negated: false,
        }
    }

    fn matches(&self, c: char) -> bool {
        let hit = self.items.iter().any(|item| match item {
            Item::Range(lo, hi) => *lo <= c && c <= *hi,
            Item::Not(ranges) => !in_ranges(ranges, c),
        });
        hit != self.negated
    }
}

#[derive(Debug, Clone)]
enum Inst {
    Class(Class),
    Split(usize, usize),
    Jmp(usize),
    Start,
    End,
    Match,
}

impl Pattern {
    /// Compiles `source`, or says why it is outside the subset.
    pub fn new(source: &str) -> Result<Self, String> {
        let chars: Vec<char> = source.chars().collect();
        let mut parser = Parser { chars, pos: 0 };
        let node = parser.alternation()?;
        if parser.pos < parser.chars.len() {
            // Only an unbalanced `)` stops the top-level alternation early.
            return Err(format!("unbalanced `)` at character {}", parser.pos + 1));
        }
        let mut program = Vec::new();
        emit(&node, &mut program)?;
        push(&mut program, Inst::Match)?;
        Ok(Pattern {
            source: source.to_owned(),
            anchored: anchored(&node),
            program,
        })
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the pattern matches somewhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let n = chars.len();
        let mut current = Threads::new(self.program.len());
        let mut next = Threads::new(self.program.len());
        for pos in 0..=n {
            if pos == 0 || !self.anchored {
                if self.add(&mut current, 0, pos, n) {
                    return true;
                }
            } else if current.dense.is_empty() {
                return false;
            }
            let Some(&c) = chars.get(pos) else { break };
            for i in 0..current.dense.len() {
                let pc = current.dense[i];
                if let Inst::Class(class) = &self.program[pc] {
                    if class.matches(c) && self.add(&mut next, pc + 1, pos + 1, n) {
                        return true;
                    }
                }
            }
            std::mem::swap(&mut current, &mut next);
            next.clear();
        }
        false
    }

    /// Adds the thread at `pc` and everything it reaches without reading a
    /// character; true if that reaches `Match`.
    fn add(&self, threads: &mut Threads, pc: usize, pos: usize, len: usize) -> bool {
        let mut stack = vec![pc];
        while let Some(pc) = stack.pop() {
            if !threads.insert(pc) {
                continue;
            }
            match &self.program[pc] {
                Inst::Match => return true,
                Inst::Jmp(to) => stack.push(*to),
                Inst::Split(a, b) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Inst::Start if pos == 0 => stack.push(pc + 1),
                Inst::End if pos == len => stack.push(pc + 1),
                Inst::Start | Inst::End | Inst::Class(_) => {}
            }
        }
        false
    }
}

/// A set of program counters, cleared in time proportional to its size.
struct Threads {
    seen: Vec<bool>,
    dense: Vec<usize>,
}

impl Threads {
    fn new(size: usize) -> Self {
        Threads {
            seen: vec![false; size],
            dense: Vec::new(),
        }
    }

    fn insert(&mut self, pc: usize) -> bool {
        match self.seen.get_mut(pc) {
            Some(seen) if !*seen => {
                *seen = true;
                self.dense.push(pc);
                true
            }
            _ => false,
        }
    }

    fn clear(&mut self) {
        for pc in self.dense.drain(..) {
            self.seen[pc] = false;
        }
    }
}

fn anchored(node: &Node) -> bool {
    match node {
        Node::Start => true,
        Node::Concat(nodes) => nodes.first().is_some_and(anchored),
        Node::Alt(nodes) => nodes.iter().all(anchored),
        _ => false,
    }
}

fn push(program: &mut Vec<Inst>, inst: Inst) -> Result<usize, String> {
    if program.len() >= MAX_PROGRAM {
        return Err(format!(
            "it is too large once its repetitions are expanded (more than {MAX_PROGRAM} steps)"
        ));
    }
    program.push(inst);
    Ok(program.len() - 1)
}

fn emit(node: &Node, program: &mut Vec<Inst>) -> Result<(), String> {
    match node {
        Node::Empty => {}
        Node::Class(class) => {
            push(program, Inst::Class(class.clone()))?;
        }
        Node::Start => {
            push(program, Inst::Start)?;
        }
        Node::End => {
            push(program, Inst::End)?;
        }
        Node::Concat(nodes) => {
            for node in nodes {
                emit(node, program)?;
            }
        }
        Node::Alt(nodes) => {
            let mut jumps = Vec::new();
            for (i, node) in nodes.iter().enumerate() {
                if i + 1 < nodes.len() {
                    let split = push(program, Inst::Split(0, 0))?;
                    emit(node, program)?;
                    jumps.push(push(program, Inst::Jmp(0))?);
                    program[split] = Inst::Split(split + 1, program.len());
                } else {
                    emit(node, program)?;
                }
            }
            let end = program.len();
            for j in jumps {
                program[j] = Inst::Jmp(end);
            }
        }
        Node::Repeat { node, min, max } => {
            for _ in 0..*min {
                emit(node, program)?;
            }
            match max {
                None => {
                    let split = push(program, Inst::Split(0, 0))?;
                    emit(node, program)?;
                    push(program, Inst::Jmp(split))?;
                    program[split] = Inst::Split(split + 1, program.len());
                }
                Some(max) => {
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        splits.push(push(program, Inst::Split(0, 0))?);
                        emit(node, program)?;
                    }
                    let end = program.len();
                    for s in splits {
                        program[s] = Inst::Split(s + 1, end);
                    }
                }
            }
        }
    }
    Ok(())
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn alternation(&mut self) -> Result<Node, String> {
        let mut branches = vec![self.concatenation()?];
        while self.eat('|') {
            branches.push(self.concatenation()?);
        }
        Ok(if branches.len() == 1 {
            branches.remove(0)
        } else {
            Node::Alt(branches)
        })
    }

    fn concatenation(&mut self) -> Result<Node, String> {
        let mut nodes = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            nodes.push(self.quantified(atom)?);
        }
        Ok(match nodes.len() {
            0 => Node::Empty,
            1 => nodes.remove(0),
            _ => Node::Concat(nodes),
        })
    }

    fn atom(&mut self) -> Result<Node, String> {
        let at = self.pos + 1;
        let Some(c) = self.peek() else {
            return Err("it ends unexpectedly".to_owned());
        };
        self.pos += 1;
        Ok(match c {
            '^' => Node::Start,
            '$' => Node::End,
            '.' => Node::Class(Class::of(LINE_TERMINATORS, true)),
            '[' => Node::Class(self.class()?),
            '(' => {
                if self.eat('?') {
                    if self.eat(':') {
                    } else if self.eat('<') && !matches!(self.peek(), Some('=' | '!')) {
                        while !self.eat('>') {
                            if self.peek().is_none() {
                                return Err(format!("unfinished group name at character {at}"));
                            }
                            self.pos += 1;
                        }
                    } else {
                        return Err(format!(
                            "lookaround and other `(?…)` groups are not supported (character {at})"
                        ));
                    }
                }
                let inner = self.alternation()?;
                if !self.eat(')') {
                    return Err(format!("the group opened at character {at} is not closed"));
                }
                inner
            }
            '\\' => Node::Class(self.escape(false)?),
            '*' | '+' | '?' | '{' => {
                return Err(format!("nothing to repeat at character {at}"));
            }
            ']' | '}' => {
                return Err(format!("unbalanced `{c}` at character {at} (escape it)"));
            }
            c => Node::Class(Class::single(c)),
        })
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, String> {
        let at = self.pos + 1;
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                self.pos += 1;
                let min = self.number()?;
                let max = if self.eat(',') {
                    if self.peek() == Some('}') {
                        None
                    } else {
                        Some(self.number()?)
                    }
                } else {
                    Some(min)
                };
                if self.peek() != Some('}') {
                    return Err(format!("unfinished `{{` at character {at}"));
                }
                if max.is_some_and(|max| max < min) {
                    return Err(format!("`{{{min},…}}` at character {at} is out of order"));
                }
                (min, max)
            }
            _ => return Ok(atom),
        };
        self.pos += 1;
        self.eat('?'); // lazy: the same strings match
        if matches!(atom, Node::Start | Node::End) {
            return Err(format!("an anchor cannot be repeated (character {at})"));
        }
        if matches!(self.peek(), Some('*' | '+' | '?' | '{')) {
            return Err(format!(
                "a quantifier follows another at character {}",
                self.pos + 1
            ));
        }
        Ok(Node::Repeat {
            node: Box::new(atom),
            min,
            max,
        })
    }

    fn number(&mut self) -> Result<u32, String> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits: String = self.chars[start..self.pos].iter().collect();
        if digits.is_empty() {
            return Err(format!("expected a number at character {}", start + 1));
        }
        match digits.parse::<u32>() {
            Ok(n) if n <= MAX_REPEAT => Ok(n),
            _ => Err(format!(
                "a repetition count at character {} is above {MAX_REPEAT}",
                start + 1
            )),
        }
    }

    fn class(&mut self) -> Result<Class, String> {
        let at = self.pos;
        let negated = self.eat('^');
        let mut items = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(format!("the class opened at character {at} is not closed"));
            };
            self.pos += 1;
            if c == ']' {
                break;
            }
            let lo = if c == '\\' {
                let escaped = self.escape(true)?;
                match single_char(&escaped) {
                    Some(lo) => lo,
                    None => {
                        items.extend(escaped.items);
                        continue;
                    }
                }
            } else {
                c
            };
            // A `-` between two characters makes a range; elsewhere it is
            // itself.
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|&c| c != ']') {
                self.pos += 1;
                let hi = match self.peek() {
                    Some('\\') => {
                        self.pos += 1;
                        let escaped = self.escape(true)?;
                        single_char(&escaped).ok_or_else(|| {
                            format!("a class escape cannot end a range (character {})", self.pos)
                        })?
                    }
                    Some(hi) => {
                        self.pos += 1;
                        hi
                    }
                    None => {
                        return Err(format!("the class opened at character {at} is not closed"))
                    }
                };
                if hi < lo {
                    return Err(format!(
                        "the range `{lo}-{hi}` (character {}) is out of order",
                        self.pos
                    ));
                }
                items.push(Item::Range(lo, hi));
            } else {
                items.push(Item::Range(lo, lo));
            }
        }
        Ok(Class { items, negated })
    }

    /// After a `\`: the class it stands for.
    fn escape(&mut self, in_class: bool) -> Result<Class, String> {
        let at = self.pos;
        let Some(c) = self.peek() else {
            return Err("it ends with a lone `\\`".to_owned());
        };
        self.pos += 1;
        let class = match c {
            'd' => Class::of(DIGIT, false),
            'w' => Class::of(WORD, false),
            's' => Class::of(SPACE, false),
            'D' | 'W' | 'S' => {
                let ranges = match c {
                    'D' => DIGIT,
                    'W' => WORD,
                    _ => SPACE,
                };
                if in_class {
                    Class {
                        items: vec![Item::Not(ranges)],
                        negated: false,
                    }
                } else {
                    Class::of(ranges, true)
                }
            }
            'n' => Class::single('\n'),
            'r' => Class::single('\r'),
            't' => Class::single('\t'),
            'f' => Class::single('\u{c}'),
            'v' => Class::single('\u{b}'),
            '0' if !self.peek().is_some_and(|c| c.is_ascii_digit()) => Class::single('\0'),
            'b' if in_class => Class::single('\u{8}'),
            'u' => {
                let hex: String = self.chars.iter().skip(self.pos).take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("`\\u` at character {at} needs four hex digits"))?;
                self.pos += 4;
                Class::single(code)
            }
            c if c.is_ascii_punctuation() => Class::single(c),
            c => {
                return Err(format!(
                    "the escape `\\{c}` at character {at} is not supported"
                ))
            }
        };
        Ok(class)
    }
}

fn single_char(class: &Class) -> Option<char> {
    match class.items.as_slice() {
        [Item::Range(lo, hi)] if lo == hi && !class.negated => Some(*lo),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
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
            "(?=a)", "(?!a)", r"\bword", r"(a)\1", "a**", "*a", "(a", "a)", "[a", "a{2,1}",
            "a{5000}", "[z-a]", r"\p{L}", "^*",
        ] {
            assert!(Pattern::new(p).is_err(), "{p}");
        }
        assert!(
            Pattern::new("(?:[a-z]{1,1000}){1,1000}").is_err(),
            "too large"
        );
    }
}
