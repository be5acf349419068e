//! Running a program over a string: a Pike VM, every thread in step.

use super::program::Inst;
use super::Pattern;

impl Pattern {
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
