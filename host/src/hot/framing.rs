//! Telling a file that is still being written from a whole component, by
//! its framing alone.

/// Why a file cannot be a whole component yet, judged from its framing
/// alone: the 8-byte header, then sections of `id, LEB128 size, payload`.
/// A file cut at a section boundary passes; compiling it then fails, and
/// the next change to the file is loaded again.
pub fn incomplete(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return Some("the file is empty".to_owned());
    }
    if bytes.len() < 8 {
        return Some(format!("the file has only {} bytes", bytes.len()));
    }
    if !bytes.starts_with(b"\0asm") {
        // Not wasm at all: compiling says so.
        return None;
    }
    let mut at = 8usize;
    while at < bytes.len() {
        at += 1; // section id
        let mut size: u64 = 0;
        let mut shift = 0;
        loop {
            let Some(&b) = bytes.get(at) else {
                return Some("the file ends inside a section header".to_owned());
            };
            at += 1;
            size |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 || shift > 35 {
                break;
            }
        }
        let end = (at as u64).saturating_add(size);
        if end > bytes.len() as u64 {
            return Some(format!(
                "a section runs to byte {end}, past the end of the file ({} bytes)",
                bytes.len()
            ));
        }
        at = end as usize;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_tells_incomplete_files() {
        assert!(incomplete(b"").is_some());
        assert!(incomplete(b"\0asm").is_some());
        // Header alone: complete framing (compiling decides the rest).
        assert!(incomplete(b"\0asm\x0d\0\x01\0").is_none());
        // A section of 5 bytes with only 2 present.
        assert!(incomplete(b"\0asm\x0d\0\x01\0\x01\x05ab").is_some());
        assert!(incomplete(b"\0asm\x0d\0\x01\0\x01\x02ab").is_none());
        // Not wasm: left to the compiler's message.
        assert!(incomplete(b"this is not wasm").is_none());
    }
}
