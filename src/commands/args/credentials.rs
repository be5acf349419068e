//! Connection URLs that carry credentials, read from a file so a password
//! never has to be on a command line (where `ps` shows it to every user).

use std::path::Path;

use anyhow::Context as _;

/// Largest URL file read, in bytes.
const MAX_URL_FILE: u64 = 4096;

/// The URL in `path` (surrounding whitespace and a trailing newline
/// dropped): what `--bus-file` and `--store-file` name. Errors name the
/// file, never its content.
pub(crate) fn read_url_file(path: &Path, flag: &str) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("{flag} {}: cannot read it", path.display()))?;
    if meta.len() > MAX_URL_FILE {
        anyhow::bail!(
            "{flag} {}: larger than {MAX_URL_FILE} bytes; it should hold one URL",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{flag} {}: cannot read it as text", path.display()))?;
    let url = text.trim();
    if url.is_empty() || url.contains(char::is_whitespace) {
        anyhow::bail!(
            "{flag} {}: it should hold one URL and nothing else",
            path.display()
        );
    }
    Ok(url.to_owned())
}

/// `url` without the password of its user-info part, for messages.
pub(crate) fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_url_file_is_read_and_its_content_never_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bus");
        std::fs::write(&file, "amqp://gw:pa55@127.0.0.1:5672/%2f\n").unwrap();
        assert_eq!(
            read_url_file(&file, "--bus-file").unwrap(),
            "amqp://gw:pa55@127.0.0.1:5672/%2f"
        );
        std::fs::write(&file, "amqp://gw:pa55@h/ junk").unwrap();
        let err = format!("{:#}", read_url_file(&file, "--bus-file").unwrap_err());
        assert!(!err.contains("pa55"), "{err}");
        assert!(read_url_file(&dir.path().join("none"), "--bus-file").is_err());
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            without_password("mongodb://app:s3cret@db:27017/pyou?x=1"),
            "mongodb://app:***@db:27017/pyou?x=1"
        );
        assert_eq!(without_password("postgres://db/x"), "postgres://db/x");
        assert_eq!(without_password("garbage s3cret"), "<not a URL>");
    }
}
