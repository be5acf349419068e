//! Pattern text → syntax tree, refusing anything outside the subset.

use super::class::{single_char, Class, Item, DIGIT, LINE_TERMINATORS, SPACE, WORD};
use super::MAX_REPEAT;

/// A parsed pattern.
#[derive(Debug, Clone)]
pub(super) enum Node {
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

/// Parses a whole pattern.
pub(super) fn parse(source: &str) -> Result<Node, String> {
    let chars: Vec<char> = source.chars().collect();
    let mut parser = Parser { chars, pos: 0 };
    let node = parser.alternation()?;
    if parser.pos < parser.chars.len() {
        // Only an unbalanced `)` stops the top-level alternation early.
        return Err(format!("unbalanced `)` at character {}", parser.pos + 1));
    }
    Ok(node)
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
