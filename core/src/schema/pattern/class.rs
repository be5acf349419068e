//! Sets of characters: what `.`, `[…]`, an escape or a literal stands for.

/// A set of characters: `items` united, then inverted if `negated`.
#[derive(Debug, Clone)]
pub(super) struct Class {
    pub(super) items: Vec<Item>,
    pub(super) negated: bool,
}

/// One part of a class.
#[derive(Debug, Clone)]
pub(super) enum Item {
    Range(char, char),
    /// A negated escape inside a class (`[\D]`).
    Not(&'static [(char, char)]),
}

pub(super) const DIGIT: &[(char, char)] = &[('0', '9')];
pub(super) const WORD: &[(char, char)] = &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
pub(super) const SPACE: &[(char, char)] = &[
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
pub(super) const LINE_TERMINATORS: &[(char, char)] =
    &[('\n', '\n'), ('\r', '\r'), ('\u{2028}', '\u{2029}')];

fn in_ranges(ranges: &[(char, char)], c: char) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi)
}

impl Class {
    pub(super) fn of(ranges: &'static [(char, char)], negated: bool) -> Self {
        Class {
            items: ranges.iter().map(|&(a, b)| Item::Range(a, b)).collect(),
            negated,
        }
    }

    pub(super) fn single(c: char) -> Self {
        Class {
            items: vec![Item::Range(c, c)],
            negated: false,
        }
    }

    pub(super) fn matches(&self, c: char) -> bool {
        let hit = self.items.iter().any(|item| match item {
            Item::Range(lo, hi) => *lo <= c && c <= *hi,
            Item::Not(ranges) => !in_ranges(ranges, c),
        });
        hit != self.negated
    }
}

/// The one character `class` stands for, if it stands for exactly one.
pub(super) fn single_char(class: &Class) -> Option<char> {
    match class.items.as_slice() {
        [Item::Range(lo, hi)] if lo == hi && !class.negated => Some(*lo),
        _ => None,
    }
}
