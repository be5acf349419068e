//! The Prometheus text format, written one way for every part (host and
//! gateway), with label values always escaped.

use std::fmt::{Display, Write as _};

/// Appends metrics in the text exposition format (version 0.0.4) to a string.
#[derive(Debug)]
pub struct TextWriter<'a> {
    out: &'a mut String,
}

impl<'a> TextWriter<'a> {
    /// A writer appending to `out`.
    pub fn new(out: &'a mut String) -> Self {
        TextWriter { out }
    }

    /// Starts a metric family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    /// One sample: `name{label="value",…} value`.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl Display,
    ) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape_label(val));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }
}

/// A label value escaped for the text format: a stray quote, backslash or
/// newline would otherwise break the whole exposition.
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_and_escaped_samples() {
        let mut out = String::new();
        TextWriter::new(&mut out)
            .family("x_total", "counter", "Things.")
            .sample("x_total", &[("key", "a\"b\\c\nd"), ("le", "1")], 3)
            .sample("x_total", &[], 4);
        assert_eq!(
            out,
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{key=\"a\\\"b\\\\c\\nd\",le=\"1\"} 3\nx_total 4\n"
        );
    }
}
