//! Guessing the format of an input from its first significant byte.

/// The formats this module can compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocFormat {
    Xml,
    Json,
}

/// Skips a UTF-8 byte order mark and whitespace, then looks at the first byte:
/// `<` is XML; `{ [ "`, a digit, `-`, `t`, `f` or `n` is JSON; anything else
/// (including empty input) is `None`.
pub fn detect(bytes: &[u8]) -> Option<DocFormat> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = *bytes.iter().find(|c| !c.is_ascii_whitespace())?;
    match first {
        b'<' => Some(DocFormat::Xml),
        b'{' | b'[' | b'"' | b'-' | b't' | b'f' | b'n' | b'0'..=b'9' => Some(DocFormat::Json),
        _ => None,
    }
}
