//! The HTTP `CONNECT` client handshake (RFC 9110 section 9.3.6): one
//! request in authority form with `Host` (and `Proxy-Authorization: Basic`
//! when the proxy URL has credentials), then the response head, parsed by
//! `httparse` (hyper's own parser) once its blank line arrived.
//!
//! The head is read one byte at a time, as curl reads it: after the blank
//! line the bytes belong to the tunnel (a server that speaks first, like
//! sshd, may have its banner right behind the proxy's `200`), and
//! [`Stream`](crate::transport::Stream) has no place to put bytes read too
//! far. A head is a few hundred bytes; its syscalls do not matter.
//! hyper's client with `upgrade` would keep them, but hands back an
//! `Upgraded` rather than the TCP socket TLS and the rest of socketkit
//! need. The head is bounded by [`MAX_CONNECT_HEAD`] and
//! [`MAX_CONNECT_HEADERS`].

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{ProxyError, Target};
use crate::addr::Host;

/// Longest `CONNECT` response head accepted, status line included.
pub const MAX_CONNECT_HEAD: usize = 16 * 1024;
/// Most header lines in a `CONNECT` response head.
pub const MAX_CONNECT_HEADERS: usize = 64;

/// Asks the HTTP proxy on `stream` for a tunnel to `target`; returns once
/// it answered 2xx, the stream then carrying the tunnel.
pub(super) async fn handshake<S>(
    stream: &mut S,
    target: &Target<'_>,
    authorization: Option<String>,
) -> Result<(), ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let authority = match target {
        Target::Addr(addr) => addr.to_string(),
        Target::Name(hp) => match &hp.host {
            // An empty host means this machine, as for a direct connect.
            Host::Any => format!("localhost:{}", hp.port),
            _ => hp.to_string(),
        },
    };
    let mut request = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: socketkit/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(authorization) = authorization {
        request.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| ProxyError::io(e, "CONNECT request"))?;
    let head = read_head(stream).await?;
    check_response(&head)
}

/// Reads up to and including the blank line that ends a response head,
/// and not one byte further.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, ProxyError> {
    let mut head = Vec::with_capacity(256);
    loop {
        if head.len() == MAX_CONNECT_HEAD {
            return Err(ProxyError::HeadTooLarge);
        }
        let byte = stream
            .read_u8()
            .await
            .map_err(|e| ProxyError::io(e, "CONNECT response"))?;
        head.push(byte);
        // httparse accepts bare LF line ends as well, and so do we.
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            return Ok(head);
        }
    }
}

/// Success for a 2xx status; the status line as the error otherwise.
fn check_response(head: &[u8]) -> Result<(), ProxyError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_CONNECT_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(ProxyError::Malformed(
                "incomplete CONNECT response head".to_owned(),
            ))
        }
        Err(e) => return Err(ProxyError::Malformed(format!("CONNECT response: {e}"))),
    }
    let (Some(status), Some(version)) = (response.code, response.version) else {
        return Err(ProxyError::Malformed(
            "CONNECT response without a status".to_owned(),
        ));
    };
    if (200..300).contains(&status) {
        return Ok(());
    }
    // The reason is the proxy's text: shown, never trusted with control
    // characters (a forged second line in a terminal or a log).
    let reason: String = response
        .reason
        .unwrap_or_default()
        .chars()
        .flat_map(char::escape_default)
        .collect();
    let mut line = format!("HTTP/1.{version} {status} {reason}")
        .trim_end()
        .to_owned();
    // 407 is the proxy's "who are you"; tinyproxy says 401 to a CONNECT.
    if matches!(status, 401 | 407) {
        line.push_str(" (missing or wrong credentials: USER:PASSWORD@ in the proxy URL)");
    }
    Err(ProxyError::HttpStatus { status, line })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::HostPort;

    async fn against(
        reply: &[u8],
        auth: Option<String>,
    ) -> (String, Result<(), ProxyError>, Vec<u8>) {
        let hp = HostPort {
            host: Host::Ip("::1".parse().unwrap()),
            port: 443,
        };
        let (mut client, mut proxy) = tokio::io::duplex(64 * 1024);
        proxy.write_all(reply).await.unwrap();
        proxy.shutdown().await.unwrap();
        let result = handshake(&mut client, &Target::Name(&hp), auth).await;
        // What is left for the tunnel must still be there.
        let mut left = Vec::new();
        client.read_to_end(&mut left).await.unwrap();
        drop(client);
        let mut sent = Vec::new();
        proxy.read_to_end(&mut sent).await.unwrap();
        (String::from_utf8(sent).unwrap(), result, left)
    }

    #[tokio::test]
    async fn one_request_and_not_a_byte_of_the_tunnel_read() {
        let (sent, result, left) = against(
            b"HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\nSSH-2.0-banner\r\n",
            Some("Basic dTpw".to_owned()),
        )
        .await;
        result.unwrap();
        assert_eq!(left, b"SSH-2.0-banner\r\n");
        assert!(
            sent.starts_with("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n"),
            "{sent}"
        );
        assert!(
            sent.contains("\r\nProxy-Authorization: Basic dTpw\r\n"),
            "{sent}"
        );
        assert!(sent.ends_with("\r\n\r\n"));
        let (_, result, _) = against(b"HTTP/1.0 200 OK\n\n", None).await;
        result.unwrap();
    }

    #[tokio::test]
    async fn a_refusal_is_its_status_line() {
        let (_, result, _) = against(
            b"HTTP/1.1 403 Filtered\r\nContent-Length: 3\r\n\r\nno\n",
            None,
        )
        .await;
        let err = result.unwrap_err();
        assert!(matches!(err, ProxyError::HttpStatus { status: 403, .. }));
        assert_eq!(err.to_string(), "HTTP/1.1 403 Filtered");
        let (_, result, _) =
            against(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", None).await;
        assert!(result.unwrap_err().to_string().contains("USER:PASSWORD@"));
        let (_, result, _) = against(b"HTTP/1.1 502 Bad\x1b[2J\r\n\r\n", None).await;
        let err = result.unwrap_err().to_string();
        assert!(!err.chars().any(char::is_control), "{err:?}");
    }

    #[tokio::test]
    async fn broken_and_endless_heads_fail() {
        let (_, result, _) = against(b"HTTP/1.1 200 OK\r\n", None).await;
        assert!(result
            .unwrap_err()
            .to_string()
            .contains("closed the connection"));
        let (_, result, _) = against(b"SSH-2.0-x\r\n\r\n", None).await;
        assert!(result.unwrap_err().to_string().contains("malformed"));
        let mut endless = b"HTTP/1.1 200 OK\r\n".to_vec();
        endless.resize(MAX_CONNECT_HEAD + 10, b'a');
        let (_, result, _) = against(&endless, None).await;
        assert!(matches!(result.unwrap_err(), ProxyError::HeadTooLarge));
    }
}
