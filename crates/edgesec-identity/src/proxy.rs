//! An HTTP proxy reached with `CONNECT`, from config or from `HTTPS_PROXY` / `https_proxy`,
//! skipped for hosts that `NO_PROXY` / `no_proxy` names. The TLS session to the service runs
//! inside the tunnel, so the proxy sees only the host name and port.

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use crate::error::CloudError;

/// The most a proxy may send as its answer to `CONNECT` before the tunnel opens.
const MAX_CONNECT_RESPONSE: usize = 8 * 1024;

/// Where the proxy setting comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProxySetting {
    /// `HTTPS_PROXY` / `https_proxy` and `NO_PROXY` / `no_proxy` from the environment.
    #[default]
    FromEnv,
    /// This proxy URL (`http://[user:password@]host:port`), with `NO_PROXY` still honoured.
    Url(String),
}

#[derive(Clone)]
pub struct Proxy {
    host: String,
    port: u16,
    /// `Proxy-Authorization` value, when the URL has credentials.
    authorization: Option<Zeroizing<String>>,
    no_proxy: Vec<String>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print the credentials
        write!(f, "Proxy({}:{})", self.host, self.port)
    }
}

fn env_any(names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| std::env::var(n).ok())
        .find(|v| !v.trim().is_empty())
}

impl Proxy {
    /// The proxy to use, if any.
    pub fn resolve(setting: &ProxySetting) -> Result<Option<Proxy>, CloudError> {
        let url = match setting {
            ProxySetting::Url(u) => Some(u.clone()),
            ProxySetting::FromEnv => env_any(&["HTTPS_PROXY", "https_proxy"]),
        };
        let no_proxy = env_any(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
        url.map(|u| Proxy::parse(&u, &no_proxy)).transpose()
    }

    pub fn parse(url: &str, no_proxy: &str) -> Result<Proxy, CloudError> {
        let bad = |why: &str| CloudError::Setup(format!("proxy {:?}: {why}", redact(url)));
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some((scheme, _)) => {
                return Err(bad(&format!(
                    "{scheme}:// proxies are not supported; use an http:// proxy (the tunnel inside is TLS)"
                )));
            }
            None => url,
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) =
            split_host_port(hostport, 80).ok_or_else(|| bad("expected host:port"))?;
        let authorization = userinfo.map(|u| {
            let decoded = percent_encoding::percent_decode_str(u).decode_utf8_lossy();
            Zeroizing::new(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(decoded.as_bytes())
            ))
        });
        Ok(Proxy {
            host,
            port,
            authorization,
            no_proxy: no_proxy
                .split(',')
                .map(|s| s.trim().trim_start_matches('.').to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
        })
    }

    /// Whether `host` goes through the proxy: not when `NO_PROXY` has `*`, the host, or a
    /// domain the host is in (`example.com` and `.example.com` both match `a.example.com`).
    pub fn applies_to(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        !self.no_proxy.iter().any(|n| {
            let n = n.split(':').next().unwrap_or(n);
            n == "*" || host == n || host.ends_with(&format!(".{n}"))
        })
    }

    /// A TCP stream to the proxy, tunnelled to `host:port`.
    pub async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, CloudError> {
        let mut tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                CloudError::Unreachable(format!(
                    "cannot connect to the proxy {}:{}: {e}",
                    self.host, self.port
                ))
            })?;
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut req = Zeroizing::new(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"));
        if let Some(a) = &self.authorization {
            req.push_str(&format!("Proxy-Authorization: {}\r\n", a.as_str()));
        }
        req.push_str("\r\n");
        let io = |e: std::io::Error| CloudError::Unreachable(format!("proxy: {e}"));
        tcp.write_all(req.as_bytes()).await.map_err(io)?;
        // Read the answer byte by byte, so nothing of the tunnel is consumed.
        let mut head = Vec::with_capacity(256);
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= MAX_CONNECT_RESPONSE {
                return Err(CloudError::Unreachable(
                    "the proxy's answer to CONNECT is too long".into(),
                ));
            }
            let b = tcp.read_u8().await.map_err(io)?;
            head.push(b);
        }
        let status_line = String::from_utf8_lossy(&head);
        let status_line = status_line.lines().next().unwrap_or_default();
        let code = status_line.split_whitespace().nth(1).unwrap_or_default();
        if code != "200" {
            return Err(CloudError::Unreachable(format!(
                "the proxy refused the tunnel to {target}: {status_line}"
            )));
        }
        Ok(tcp)
    }
}

/// `host[:port]` or `[v6]:port`.
pub(crate) fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((h.to_owned(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => Some((h.to_owned(), p.parse().ok()?)),
        Some(_) => None,
        None => Some((s.to_owned(), default_port)),
    }
}

/// A proxy URL without its credentials, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        (None, Some(at)) => format!("***@{}", &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_and_no_proxy_matches_domains() {
        let p = Proxy::parse(
            "http://u%40x:p@proxy.lan:3128",
            "localhost, .corp.example,10.0.0.1",
        )
        .unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.lan", 3128));
        assert_eq!(
            p.authorization.as_deref().map(String::as_str),
            Some("Basic dUB4OnA=")
        );
        assert!(!format!("{p:?}").contains("Basic"));
        assert!(!p.applies_to("localhost"));
        assert!(!p.applies_to("hub.corp.example"));
        assert!(!p.applies_to("corp.example"));
        assert!(!p.applies_to("10.0.0.1"));
        assert!(p.applies_to("global.azure-devices-provisioning.net"));
        assert!(p.applies_to("notcorp.example"));
        assert!(!Proxy::parse("proxy:8080", "*").unwrap().applies_to("any"));
        assert_eq!(Proxy::parse("proxy", "").unwrap().port, 80);
        let e = Proxy::parse("https://u:secret@p:1", "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not supported") && !e.contains("secret"), "{e}");
        assert!(Proxy::parse("http://:1", "").is_err());
        assert_eq!(
            split_host_port("[::1]:8443", 443),
            Some(("::1".into(), 8443))
        );
    }

    #[tokio::test]
    async fn connect_opens_a_tunnel_or_reports_the_refusal() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            for answer in [
                "HTTP/1.1 200 Connection established\r\n\r\n",
                "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
            ] {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = vec![0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
                s.write_all(answer.as_bytes()).await.unwrap();
                s.write_all(b"tunnel").await.unwrap();
            }
            seen
        });
        let p = Proxy::parse(&format!("http://a:b@127.0.0.1:{port}"), "").unwrap();
        let mut t = p.connect("hub.example", 443).await.unwrap();
        let mut rest = [0u8; 6];
        t.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"tunnel", "nothing after the head is consumed");
        let e = p.connect("hub.example", 443).await.unwrap_err();
        assert!(e.to_string().contains("407"), "{e}");
        let seen = server.await.unwrap();
        assert!(
            seen[0].starts_with("CONNECT hub.example:443 HTTP/1.1\r\n"),
            "{}",
            seen[0]
        );
        assert!(seen[0].contains("Proxy-Authorization: Basic YTpi\r\n"));
    }
}
