//! [`OtlpConfig`]: the exporter's settings, completed from the OpenTelemetry environment
//! variables as the specification orders them, and checked.

use std::time::Duration;

use opentelemetry_proto::tonic::resource::v1::Resource;

use super::{
    string_kv, DEFAULT_ENDPOINT, ENV_ENDPOINT, ENV_METRICS_ENDPOINT, ENV_METRICS_PROTOCOL,
    ENV_METRICS_TIMEOUT, ENV_PROTOCOL, ENV_RESOURCE_ATTRIBUTES, ENV_SERVICE_NAME, ENV_TIMEOUT,
};
use crate::error::Error;

/// Where and how an [`OtlpExporter`](crate::otlp::OtlpExporter) sends, and the resource it describes.
///
/// Settings made here win over the environment; what is not set here comes from the
/// OpenTelemetry environment variables (unless [`ignore_env`](Self::ignore_env)), then from
/// the defaults. See `docs/exporting.md` for the table.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let config = ringmeter::export::otlp::OtlpConfig::new()
///     .endpoint("http://collector:4318/v1/metrics")
///     .service_name("checkout")
///     .resource_attribute("deployment.environment", "prod")
///     .timeout(Duration::from_secs(5));
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OtlpConfig {
    endpoint: Option<String>,
    service_name: Option<String>,
    attributes: Vec<(String, String)>,
    timeout: Option<Duration>,
    attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    shutdown_timeout: Duration,
    use_env: bool,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: None,
            attributes: Vec::new(),
            timeout: None,
            attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
            use_env: true,
        }
    }
}

impl OtlpConfig {
    /// The defaults: endpoint, timeout and resource from the environment or
    /// [`DEFAULT_ENDPOINT`] and 10 s; 5 attempts per window, backoff from 0.5 s doubling up to
    /// 30 s; 5 s to flush at shutdown.
    pub fn new() -> Self {
        Self::default()
    }

    /// The full URL of the metrics endpoint (`http://host:port/path`), used as it is.
    pub fn endpoint(mut self, url: &str) -> Self {
        self.endpoint = Some(url.to_owned());
        self
    }

    /// The `service.name` resource attribute.
    pub fn service_name(mut self, name: &str) -> Self {
        self.service_name = Some(name.to_owned());
        self
    }

    /// A resource attribute (string-valued); it wins over the same key in
    /// `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn resource_attribute(mut self, key: &str, value: &str) -> Self {
        self.attributes.push((key.to_owned(), value.to_owned()));
        self
    }

    /// How long one request may take, connection included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Requests per window before it is given up (at least 1).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// The wait before the first retry, and the most any wait grows to (each retry doubles
    /// it; a `Retry-After` of whole seconds replaces it, capped at `max`).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// How long dropping the exporter may spend sending the windows still queued.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Reads no `OTEL_*` environment variable.
    pub fn ignore_env(mut self) -> Self {
        self.use_env = false;
        self
    }

    /// The settings, completed from the process environment.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an endpoint that is not an `http://` URL, a timeout that
    /// is not a whole number of milliseconds, a protocol other than `http/protobuf`, or an
    /// `OTEL_RESOURCE_ATTRIBUTES` that is not a list of `key=value` pairs.
    pub fn resolve(&self) -> Result<Resolved, Error> {
        self.resolve_with(|name| std::env::var(name).ok())
    }

    /// As [`resolve`](Self::resolve), with `env` in place of the process environment.
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve).
    ///
    /// # Examples
    /// ```
    /// use ringmeter::export::otlp::OtlpConfig;
    /// let env = |name: &str| match name {
    ///     "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318".to_owned()),
    ///     "OTEL_RESOURCE_ATTRIBUTES" => Some("service.name=api,team=a%2Cb".to_owned()),
    ///     _ => None,
    /// };
    /// let r = OtlpConfig::new().resolve_with(env)?;
    /// assert_eq!(r.endpoint(), "http://collector:4318/v1/metrics");
    /// assert_eq!(r.attribute("service.name"), Some("api"));
    /// assert_eq!(r.attribute("team"), Some("a,b"));
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn resolve_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<Resolved, Error> {
        let env = |name: &str| {
            if self.use_env {
                env(name).filter(|v| !v.trim().is_empty())
            } else {
                None
            }
        };
        for key in [ENV_METRICS_PROTOCOL, ENV_PROTOCOL] {
            if let Some(p) = env(key) {
                if p.trim() != "http/protobuf" {
                    return Err(Error::invalid(
                        key,
                        format!("{p:?}"),
                        "only http/protobuf is supported",
                    ));
                }
                break;
            }
        }
        let (key, endpoint) = if let Some(e) = &self.endpoint {
            ("OtlpConfig::endpoint", e.clone())
        } else if let Some(e) = env(ENV_METRICS_ENDPOINT) {
            (ENV_METRICS_ENDPOINT, e.trim().to_owned())
        } else if let Some(e) = env(ENV_ENDPOINT) {
            let base = e.trim();
            let sep = if base.ends_with('/') { "" } else { "/" };
            (ENV_ENDPOINT, format!("{base}{sep}v1/metrics"))
        } else {
            ("default", DEFAULT_ENDPOINT.to_owned())
        };
        check_endpoint(key, &endpoint)?;
        let timeout = match self.timeout {
            Some(t) => t,
            None => match env(ENV_METRICS_TIMEOUT)
                .map(|v| (ENV_METRICS_TIMEOUT, v))
                .or_else(|| env(ENV_TIMEOUT).map(|v| (ENV_TIMEOUT, v)))
            {
                Some((key, v)) => match v.trim().parse::<u64>() {
                    Ok(ms) if ms > 0 => Duration::from_millis(ms),
                    _ => {
                        return Err(Error::invalid(
                            key,
                            format!("{v:?}"),
                            "a positive whole number of milliseconds",
                        ))
                    }
                },
                None => Duration::from_secs(10),
            },
        };
        if timeout.is_zero() {
            return Err(Error::invalid("OtlpConfig::timeout", "0", "more than zero"));
        }
        if self.attempts == 0 {
            return Err(Error::invalid("OtlpConfig::attempts", 0, "at least 1"));
        }
        let mut attributes: Vec<(String, String)> = match env(ENV_RESOURCE_ATTRIBUTES) {
            Some(v) => parse_resource_attributes(&v)?,
            None => Vec::new(),
        };
        let mut set = |k: &str, v: &str| match attributes.iter_mut().find(|(key, _)| key == k) {
            Some(kv) => kv.1 = v.to_owned(),
            None => attributes.push((k.to_owned(), v.to_owned())),
        };
        if let Some(name) = env(ENV_SERVICE_NAME) {
            set("service.name", name.trim());
        }
        for (k, v) in &self.attributes {
            set(k, v);
        }
        if let Some(name) = &self.service_name {
            set("service.name", name);
        }
        if !attributes.iter().any(|(k, _)| k == "service.name") {
            attributes.push(("service.name".to_owned(), default_service_name()));
        }
        Ok(Resolved {
            endpoint,
            timeout,
            attributes,
            attempts: self.attempts,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff.max(self.initial_backoff),
            shutdown_timeout: self.shutdown_timeout,
        })
    }
}

/// An [`OtlpConfig`] completed from the environment and checked.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Resolved {
    pub(crate) endpoint: String,
    pub(crate) timeout: Duration,
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) attempts: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) shutdown_timeout: Duration,
}

impl Resolved {
    /// The URL requests are posted to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The timeout of one request.
    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// The resource attributes, in order: `OTEL_RESOURCE_ATTRIBUTES`, then those set in code;
    /// `service.name` is always among them.
    pub fn attributes(&self) -> &[(String, String)] {
        &self.attributes
    }

    /// The value of resource attribute `key`.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The resource message.
    pub fn resource(&self) -> Resource {
        Resource {
            attributes: self
                .attributes
                .iter()
                .map(|(k, v)| string_kv(k, v))
                .collect(),
            ..Resource::default()
        }
    }
}

/// `unknown_service:` and the executable's name, as the OpenTelemetry resource conventions
/// say when no `service.name` is given.
fn default_service_name() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if exe.is_empty() {
        "unknown_service".to_owned()
    } else {
        format!("unknown_service:{exe}")
    }
}

/// Checks that `url` is an `http://` URL with a host (no TLS client is built in).
fn check_endpoint(key: &str, url: &str) -> Result<(), Error> {
    let reject = |why: &str| Err(Error::invalid(key, format!("{url:?}"), why));
    let Some(rest) = url.strip_prefix("http://") else {
        return if url.starts_with("https://") {
            reject("https is not supported: point it at a local collector over http://")
        } else {
            reject("an http:// URL")
        };
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains(['@', ' ']) {
        return reject("an http:// URL with a host (and an optional port)");
    }
    match ureq::http::Uri::try_from(url) {
        Ok(uri) if uri.host().is_some() => Ok(()),
        _ => reject("an http:// URL with a host (and an optional port)"),
    }
}

/// Parses `OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs separated by commas, keys and values
/// percent-decoded after splitting, surrounding spaces trimmed. Per the specification an
/// invalid list is refused whole.
fn parse_resource_attributes(text: &str) -> Result<Vec<(String, String)>, Error> {
    let bad = |why: &str| Error::invalid(ENV_RESOURCE_ATTRIBUTES, format!("{text:?}"), why);
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in text.split(',') {
        if pair.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = pair.split_once('=') else {
            return Err(bad("comma-separated key=value pairs"));
        };
        let k = percent_decode(k.trim()).ok_or_else(|| bad("invalid percent-encoding"))?;
        let v = percent_decode(v.trim()).ok_or_else(|| bad("invalid percent-encoding"))?;
        if k.is_empty() {
            return Err(bad("a key may not be empty"));
        }
        match out.iter_mut().find(|(key, _)| *key == k) {
            Some(kv) => kv.1 = v,
            None => out.push((k, v)),
        }
    }
    Ok(out)
}

/// `%XX` sequences decoded; `None` for a broken sequence or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn endpoints_follow_the_specification_order() {
        let none = OtlpConfig::new().resolve_with(env_of(&[])).unwrap();
        assert_eq!(none.endpoint(), DEFAULT_ENDPOINT);
        assert_eq!(none.request_timeout(), Duration::from_secs(10));
        let base = OtlpConfig::new()
            .resolve_with(env_of(&[(ENV_ENDPOINT, "http://c:4318/")]))
            .unwrap();
        assert_eq!(base.endpoint(), "http://c:4318/v1/metrics");
        let base = OtlpConfig::new()
            .resolve_with(env_of(&[(ENV_ENDPOINT, "http://c:4318/otlp")]))
            .unwrap();
        assert_eq!(base.endpoint(), "http://c:4318/otlp/v1/metrics");
        let both = OtlpConfig::new()
            .resolve_with(env_of(&[
                (ENV_ENDPOINT, "http://c:4318"),
                (ENV_METRICS_ENDPOINT, "http://m:9000/custom"),
            ]))
            .unwrap();
        assert_eq!(both.endpoint(), "http://m:9000/custom");
        let code = OtlpConfig::new()
            .endpoint("http://x:1/y")
            .resolve_with(env_of(&[(ENV_METRICS_ENDPOINT, "http://m:9000/custom")]))
            .unwrap();
        assert_eq!(code.endpoint(), "http://x:1/y");
        let ignored = OtlpConfig::new()
            .ignore_env()
            .resolve_with(env_of(&[(ENV_METRICS_ENDPOINT, "nonsense")]))
            .unwrap();
        assert_eq!(ignored.endpoint(), DEFAULT_ENDPOINT);
    }

    #[test]
    fn bad_endpoints_and_values_are_typed_errors() {
        for (key, value) in [
            (ENV_METRICS_ENDPOINT, "collector:4318"),
            (ENV_METRICS_ENDPOINT, "https://c:4318/v1/metrics"),
            (ENV_METRICS_ENDPOINT, "http:///v1/metrics"),
            (ENV_ENDPOINT, "ftp://c"),
            (ENV_TIMEOUT, "10s"),
            (ENV_METRICS_TIMEOUT, "0"),
            (ENV_PROTOCOL, "grpc"),
            (ENV_RESOURCE_ATTRIBUTES, "a=1,b"),
            (ENV_RESOURCE_ATTRIBUTES, "a=%zz"),
            (ENV_RESOURCE_ATTRIBUTES, "=x"),
        ] {
            let pairs: &'static [(&'static str, &'static str)] =
                Box::leak(vec![(key, value)].into_boxed_slice());
            match OtlpConfig::new().resolve_with(env_of(pairs)) {
                Err(Error::InvalidConfig { key: k, .. }) => assert_eq!(k, key, "{value}"),
                other => panic!("{key}={value}: {other:?}"),
            }
        }
        assert!(matches!(
            OtlpConfig::new().attempts(0).resolve_with(env_of(&[])),
            Err(Error::InvalidConfig { .. })
        ));
        assert!(matches!(
            OtlpConfig::new()
                .endpoint("localhost:4318")
                .resolve_with(env_of(&[])),
            Err(Error::InvalidConfig { .. })
        ));
    }

    #[test]
    fn resource_attributes_are_decoded_and_ranked() {
        let r = OtlpConfig::new()
            .resolve_with(env_of(&[(
                ENV_RESOURCE_ATTRIBUTES,
                " service.name = env-attr , k%3D1=v%2C2%20x,,empty=",
            )]))
            .unwrap();
        assert_eq!(r.attribute("service.name"), Some("env-attr"));
        assert_eq!(r.attribute("k=1"), Some("v,2 x"));
        assert_eq!(r.attribute("empty"), Some(""));
        let r = OtlpConfig::new()
            .resolve_with(env_of(&[
                (ENV_RESOURCE_ATTRIBUTES, "service.name=attr"),
                (ENV_SERVICE_NAME, "svc"),
            ]))
            .unwrap();
        assert_eq!(r.attribute("service.name"), Some("svc"));
        let r = OtlpConfig::new()
            .service_name("code")
            .resource_attribute("team", "t")
            .resolve_with(env_of(&[
                (ENV_SERVICE_NAME, "svc"),
                (ENV_RESOURCE_ATTRIBUTES, "team=e"),
            ]))
            .unwrap();
        assert_eq!(
            (r.attribute("service.name"), r.attribute("team")),
            (Some("code"), Some("t"))
        );
        let r = OtlpConfig::new().resolve_with(env_of(&[])).unwrap();
        assert!(r
            .attribute("service.name")
            .unwrap()
            .starts_with("unknown_service"));
        assert_eq!(r.resource().attributes.len(), 1);
    }
}
