//! `http://host:port` addresses as etcd writes them in flags.

use std::fmt;
use std::str::FromStr;

use crate::error::ConfigError;

/// A URL naming a TCP endpoint: `http://host:port`. TLS (`https`) is not
/// supported yet and is refused rather than silently served in clear text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerUrl {
    host: String,
    port: u16,
}

impl PeerUrl {
    /// `http://127.0.0.1:port`.
    pub fn localhost(port: u16) -> PeerUrl {
        PeerUrl {
            host: "127.0.0.1".into(),
            port,
        }
    }

    /// The host part.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, for binding and connecting.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for PeerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority())
    }
}

impl FromStr for PeerUrl {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let rest = if let Some(rest) = text.strip_prefix("http://") {
            rest
        } else if text.starts_with("https://") || text.starts_with("unix") {
            return Err(ConfigError::Invalid(format!(
                "{text:?}: only http:// URLs are supported (no TLS or unix sockets yet)"
            )));
        } else {
            return Err(ConfigError::Invalid(format!(
                "{text:?} is not a URL of the form http://host:port"
            )));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let Some((host, port)) = bracketed.split_once("]:") else {
                return Err(ConfigError::Invalid(format!("{text:?} has no port")));
            };
            (host, port)
        } else {
            let Some((host, port)) = rest.rsplit_once(':') else {
                return Err(ConfigError::Invalid(format!("{text:?} has no port")));
            };
            (host, port)
        };
        if host.is_empty() || host.contains('/') {
            return Err(ConfigError::Invalid(format!("{text:?} has no valid host")));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| ConfigError::Invalid(format!("{text:?} has an invalid port")))?;
        Ok(PeerUrl {
            host: host.to_string(),
            port,
        })
    }
}

/// Parses a comma-separated URL list, as etcd's URL flags take.
pub fn parse_urls(text: &str) -> Result<Vec<PeerUrl>, ConfigError> {
    let urls = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<PeerUrl>, ConfigError>>()?;
    if urls.is_empty() {
        return Err(ConfigError::Invalid("an empty URL list".into()));
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let url: PeerUrl = "http://localhost:2379".parse().unwrap();
        assert_eq!(url.host(), "localhost");
        assert_eq!(url.port(), 2379);
        assert_eq!(url.to_string(), "http://localhost:2379");
        let v6: PeerUrl = "http://[::1]:2380/".parse().unwrap();
        assert_eq!(v6.authority(), "[::1]:2380");
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        for bad in [
            "https://a:1",
            "a:1",
            "http://a",
            "http://a:99999",
            "http://:1",
        ] {
            assert!(bad.parse::<PeerUrl>().is_err(), "{bad}");
        }
        assert_eq!(parse_urls("http://a:1, http://b:2").unwrap().len(), 2);
    }
}
