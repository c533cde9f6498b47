//! The hand-written request parser of the old endpoint (src/http/request.rs at the same
//! commit as `old_server.rs`), unchanged but for its imports.

use ringmeter::export::prom::Format;

/// Where the head in `bytes` ends: the offset of the newline that ends the last header
/// line, found as `\n\r\n` or `\n\n` (bare newlines are accepted as line ends).
pub(super) fn head_end(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            match bytes.get(i + 1..) {
                Some([b'\n', ..]) | Some([b'\r', b'\n', ..]) => return Some(i + 1),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// A parsed request head: only what the endpoint uses.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Request<'a> {
    pub(super) method: &'a str,
    /// The path without the query string.
    pub(super) path: &'a str,
    /// Every `Accept` header, joined with `,`.
    pub(super) accept: Option<String>,
}

impl Request<'_> {
    /// The exposition format the `Accept` headers ask for ([`Format::negotiate`]).
    pub(super) fn format(&self) -> Format {
        Format::negotiate(self.accept.as_deref())
    }
}

/// Parses a request head (without its final empty line), or the status to answer.
pub(super) fn parse_request(head: &[u8]) -> Result<Request<'_>, u16> {
    let head = str::from_utf8(head).map_err(|_| 400u16)?;
    // The newline that ends the last header line (`read_head` keeps it).
    let head = head.strip_suffix('\n').unwrap_or(head);
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().ok_or(400u16)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(400);
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.len() == 8 && v.starts_with("HTTP/") && v.as_bytes()[5].is_ascii_digit() => {
            return Err(505)
        }
        _ => return Err(400),
    };
    let path = request_path(target).ok_or(400u16)?;
    let mut accept: Option<String> = None;
    let mut host = false;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(400u16)?;
        // No whitespace before the colon, no obsolete line folding, no empty name.
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(400);
        }
        let value = value.trim_matches([' ', '\t']);
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(400);
        }
        if name.eq_ignore_ascii_case("host") {
            if host {
                return Err(400);
            }
            host = true;
        } else if name.eq_ignore_ascii_case("accept") {
            match &mut accept {
                Some(a) => {
                    a.push(',');
                    a.push_str(value);
                }
                None => accept = Some(value.to_owned()),
            }
        }
    }
    if http11 && !host {
        return Err(400);
    }
    Ok(Request {
        method,
        path,
        accept,
    })
}

/// The path of a request target in origin form (`/metrics?x`) or absolute form
/// (`http://host:9464/metrics`), without its query; `None` if it is neither.
fn request_path(target: &str) -> Option<&str> {
    if !target.is_ascii() || target.bytes().any(|b| b.is_ascii_control()) {
        return None;
    }
    let path = if target.starts_with('/') {
        target
    } else {
        let rest = target
            .strip_prefix("http://")
            .or_else(|| target.strip_prefix("https://"))?;
        match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        }
    };
    Some(path.split(['?', '#']).next().unwrap_or(path))
}

/// RFC 9110 `tchar`: the characters of a method or header name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
