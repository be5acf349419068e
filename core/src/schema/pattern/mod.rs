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

mod class;
mod parse;
mod program;
mod run;
#[cfg(test)]
mod tests;

use std::fmt;

use program::Inst;

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

impl Pattern {
    /// Compiles `source`, or says why it is outside the subset.
    pub fn new(source: &str) -> Result<Self, String> {
        let node = parse::parse(source)?;
        let mut program = Vec::new();
        program::emit(&node, &mut program)?;
        program::push(&mut program, Inst::Match)?;
        Ok(Pattern {
            source: source.to_owned(),
            anchored: program::anchored(&node),
            program,
        })
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}
