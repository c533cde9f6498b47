//! The answers: which path gives what, the bearer-token check, and the embedded dashboard
//! page; plain functions of a parsed request (hyper parses it).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use subtle::ConstantTimeEq;

use crate::engine::WeakEngine;
use crate::export::prom::Format;

/// An answer; always `Connection: close`.
pub(super) type Answer = Response<Full<Bytes>>;

/// The live dashboard: one HTML page with uPlot, its styles and the page's script inline, so
/// the binary serves it with no file and the browser loads nothing else.
const PAGE: &str = concat!(
    include_str!("../../assets/dashboard/dashboard.html"),
    "<style>\n",
    include_str!("../../assets/uplot/uPlot.min.css"),
    "\n",
    include_str!("../../assets/dashboard/dashboard.css"),
    "</style>\n<script>\n",
    include_str!("../../assets/uplot/uPlot.iife.min.js"),
    "\n</script>\n<script>\n",
    include_str!("../../assets/dashboard/dashboard.js"),
    "</script>\n</body>\n</html>\n"
);

/// What the page may do: run its own inline script and styles and fetch from this server;
/// nothing else (no other origin, no frames, no forms).
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// The paths that answer with data (and need the token when one is set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Data {
    Metrics,
    Snapshot,
}

/// What every answer needs: the engine (weakly) and the token, if one is required.
pub(super) struct Routes {
    engine: WeakEngine,
    token: Option<Box<[u8]>>,
}

impl Routes {
    pub(super) fn new(engine: WeakEngine, token: Option<&str>) -> Self {
        Self {
            engine,
            token: token.map(|t| t.as_bytes().into()),
        }
    }

    /// The answer to `request` (its body, if any, is not read).
    pub(super) fn answer<B>(&self, request: &Request<B>) -> Answer {
        if !well_formed(request) {
            return plain(StatusCode::BAD_REQUEST, "bad request\n");
        }
        // `None`: the page.
        let data = match request.uri().path() {
            "/metrics" => Some(Data::Metrics),
            "/api/snapshot" => Some(Data::Snapshot),
            "/" | "/index.html" => None,
            _ => {
                return plain(
                    StatusCode::NOT_FOUND,
                    "not found; metrics are at /metrics, the dashboard at /\n",
                )
            }
        };
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut a = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            set(&mut a, header::ALLOW, "GET, HEAD");
            return a;
        }
        let Some(data) = data else {
            let mut a = answer(StatusCode::OK, "text/html; charset=utf-8", PAGE);
            set(&mut a, header::CONTENT_SECURITY_POLICY, PAGE_POLICY);
            return a;
        };
        if let Some(denied) = self.check_token(request.headers()) {
            return denied;
        }
        // A strong handle only while answering: the engine stays owned by the application.
        let Some(engine) = self.engine.upgrade() else {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the engine has shut down\n",
            );
        };
        match data {
            Data::Metrics => {
                let accept = request
                    .headers()
                    .get_all(header::ACCEPT)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect::<Vec<_>>()
                    .join(",");
                let format = Format::negotiate((!accept.is_empty()).then_some(&*accept));
                let body = engine.render_metrics(format);
                answer(StatusCode::OK, format.content_type(), body)
            }
            Data::Snapshot => {
                let snapshot = engine.snapshot();
                drop(engine);
                match serde_json::to_vec(&*snapshot) {
                    Ok(json) => {
                        let mut a = answer(StatusCode::OK, "application/json", json);
                        set(&mut a, header::CACHE_CONTROL, "no-store");
                        a
                    }
                    Err(e) => plain(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the snapshot could not be written as JSON: {e}\n"),
                    ),
                }
            }
        }
    }

    /// `None` when the request may read data: no token is required, or it carries
    /// `Authorization: Bearer <token>` with the right token (compared in constant time);
    /// otherwise the `401` to send.
    fn check_token(&self, headers: &HeaderMap) -> Option<Answer> {
        let expected = self.token.as_deref()?;
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| bearer(v.as_bytes()));
        let (challenge, message) = match given {
            // `ct_eq` takes the same time whatever the bytes; only a length difference
            // returns early, and the length is no secret worth hiding.
            Some(token) if bool::from(token.ct_eq(expected)) => return None,
            Some(_) => (
                "Bearer realm=\"ringmeter\", error=\"invalid_token\"",
                "the bearer token is wrong\n",
            ),
            None => (
                "Bearer realm=\"ringmeter\"",
                "this server requires `Authorization: Bearer <token>`\n",
            ),
        };
        let mut a = plain(StatusCode::UNAUTHORIZED, message);
        set(&mut a, header::WWW_AUTHENTICATE, challenge);
        Some(a)
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme in any case).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| token.trim_ascii())
}

/// What hyper accepts but this server does not: HTTP/1.1 without exactly one `Host`, more
/// than one `Host` in HTTP/1.0, a target that is not a path (authority or asterisk form).
fn well_formed<B>(request: &Request<B>) -> bool {
    let hosts = request.headers().get_all(header::HOST).iter().count();
    let host_ok = match request.version() {
        Version::HTTP_11 => hosts == 1,
        _ => hosts <= 1,
    };
    host_ok && request.uri().path().starts_with('/')
}

fn answer(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut a = Response::new(Full::new(body.into()));
    *a.status_mut() = status;
    set(&mut a, header::CONTENT_TYPE, content_type);
    set(&mut a, header::CONNECTION, "close");
    set(&mut a, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    a
}

fn plain(status: StatusCode, message: impl Into<Bytes>) -> Answer {
    answer(status, "text/plain; charset=utf-8", message)
}

fn set(a: &mut Answer, name: HeaderName, value: &'static str) {
    a.headers_mut()
        .insert(name, HeaderValue::from_static(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_reads_the_scheme_in_any_case() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"BEARER abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abcdef"), None);
        assert_eq!(bearer(b"Bear"), None);
    }

    #[test]
    fn the_page_is_one_self_contained_document() {
        assert!(PAGE.starts_with("<!doctype html>"));
        assert!(PAGE.trim_end().ends_with("</html>"));
        // Nothing loaded from elsewhere.
        for external in ["src=\"http", "href=\"http", "@import", "rel=\"stylesheet\""] {
            assert!(!PAGE.contains(external), "{external}");
        }
        // uPlot's code is inline.
        assert!(PAGE.contains("uPlot"));
    }
}
