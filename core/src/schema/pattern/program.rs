//! Syntax tree → program for the matcher, counted repetitions expanded.

use super::class::Class;
use super::parse::Node;
use super::MAX_PROGRAM;

/// One step of the matcher's program.
#[derive(Debug, Clone)]
pub(super) enum Inst {
    Class(Class),
    Split(usize, usize),
    Jmp(usize),
    Start,
    End,
    Match,
}

pub(super) fn anchored(node: &Node) -> bool {
    match node {
        Node::Start => true,
        Node::Concat(nodes) => nodes.first().is_some_and(anchored),
        Node::Alt(nodes) => nodes.iter().all(anchored),
        _ => false,
    }
}

pub(super) fn push(program: &mut Vec<Inst>, inst: Inst) -> Result<usize, String> {
    if program.len() >= MAX_PROGRAM {
        return Err(format!(
            "it is too large once its repetitions are expanded (more than {MAX_PROGRAM} steps)"
        ));
    }
    program.push(inst);
    Ok(program.len() - 1)
}

pub(super) fn emit(node: &Node, program: &mut Vec<Inst>) -> Result<(), String> {
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
