//! The SOCKS5 client handshake (RFC 1928, with RFC 1929 username/password):
//! the greeting, the optional sub-negotiation, the `CONNECT` request and
//! its reply. Every read is exact (`read_exact` of a length the protocol
//! fixed or the reply announced), so nothing of the tunnel's first bytes is
//! consumed, and the longest reply is 4 + 1 + 255 + 2 bytes.

use std::net::IpAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Credentials, ProxyError, Target};
use crate::addr::Host;

const VERSION: u8 = 0x05;
const NO_AUTH: u8 = 0x00;
const USER_PASSWORD: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xff;
const CONNECT: u8 = 0x01;
const ATYP_V4: u8 = 0x01;
const ATYP_NAME: u8 = 0x03;
const ATYP_V6: u8 = 0x04;
/// RFC 1929's sub-negotiation version.
const AUTH_VERSION: u8 = 0x01;

/// Asks the proxy on `stream` to connect to `target`; returns once the
/// proxy reported success, the stream then carrying the tunnel.
pub(super) async fn handshake<S>(
    stream: &mut S,
    target: &Target<'_>,
    credentials: Option<&Credentials>,
) -> Result<(), ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Build the request first: a name too long to send fails before any
    // byte goes out.
    let request = connect_request(target)?;
    let greeting: &[u8] = match credentials {
        Some(_) => &[VERSION, 2, NO_AUTH, USER_PASSWORD],
        None => &[VERSION, 1, NO_AUTH],
    };
    write(stream, greeting).await?;
    let mut choice = [0u8; 2];
    read(stream, &mut choice, "greeting reply").await?;
    if choice[0] != VERSION {
        return Err(ProxyError::Malformed(format!(
            "greeting reply has version {:#04x}, not 5 (is it a SOCKS5 proxy?)",
            choice[0]
        )));
    }
    match (choice[1], credentials) {
        (NO_AUTH, _) => {}
        (USER_PASSWORD, Some(credentials)) => authenticate(stream, credentials).await?,
        (NO_ACCEPTABLE, _) => {
            return Err(ProxyError::NoAcceptableMethod {
                offered_password: credentials.is_some(),
            })
        }
        (method, _) => {
            return Err(ProxyError::Malformed(format!(
                "the proxy chose authentication method {method:#04x}, which was not offered"
            )))
        }
    }
    write(stream, &request).await?;
    // VER REP first: a failure is reported whatever follows it (some
    // proxies close right after the code).
    let mut status = [0u8; 2];
    read(stream, &mut status, "CONNECT reply").await?;
    check_reply_status(status)?;
    // RSV ATYP and the first address byte, then what they announce.
    let mut address = [0u8; 3];
    read(stream, &mut address, "CONNECT reply").await?;
    let rest = bound_address_rest(address[1], address[2])?;
    // The address the proxy bound for us: read so the tunnel starts clean;
    // nothing needs it.
    let mut bound = [0u8; 255 + 2];
    read(stream, &mut bound[..rest], "CONNECT reply").await?;
    Ok(())
}

/// RFC 1929: version 1, the user and the password, each length-prefixed
/// (lengths checked when the URL was parsed). Success is status 0; like
/// curl, the version byte of the answer is not held against the proxy.
async fn authenticate<S>(stream: &mut S, credentials: &Credentials) -> Result<(), ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (user, password) = (&credentials.user, &credentials.password);
    let (Ok(user_len), Ok(password_len)) = (u8::try_from(user.len()), u8::try_from(password.len()))
    else {
        return Err(ProxyError::Malformed(
            "credentials longer than 255 bytes".to_owned(),
        ));
    };
    let mut message = Vec::with_capacity(3 + user.len() + password.len());
    message.extend_from_slice(&[AUTH_VERSION, user_len]);
    message.extend_from_slice(user);
    message.push(password_len);
    message.extend_from_slice(password);
    write(stream, &message).await?;
    let mut status = [0u8; 2];
    read(stream, &mut status, "authentication reply").await?;
    if status[1] != 0 {
        return Err(ProxyError::AuthFailed);
    }
    Ok(())
}

/// `VER CMD RSV ATYP DST.ADDR DST.PORT` for a `CONNECT` to `target`.
fn connect_request(target: &Target<'_>) -> Result<Vec<u8>, ProxyError> {
    let mut request = vec![VERSION, CONNECT, 0x00];
    let (ip, port) = match target {
        Target::Addr(addr) => (Some(addr.ip()), addr.port()),
        Target::Name(hp) => match &hp.host {
            Host::Ip(ip) => (Some(*ip), hp.port),
            Host::Name(name) => {
                let len = u8::try_from(name.len()).map_err(|_| {
                    ProxyError::Malformed("a SOCKS5 host name is at most 255 bytes".to_owned())
                })?;
                request.extend_from_slice(&[ATYP_NAME, len]);
                request.extend_from_slice(name.as_bytes());
                (None, hp.port)
            }
            // An empty host means this machine, as for a direct connect;
            // for the proxy, that is its own loopback.
            Host::Any => (Some(IpAddr::from([127, 0, 0, 1])), hp.port),
        },
    };
    match ip {
        Some(IpAddr::V4(v4)) => {
            request.push(ATYP_V4);
            request.extend_from_slice(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => {
            request.push(ATYP_V6);
            request.extend_from_slice(&v6.octets());
        }
        None => {}
    }
    request.extend_from_slice(&port.to_be_bytes());
    Ok(request)
}

/// `VER REP` of a `CONNECT` reply: version 5, and 0 for success.
fn check_reply_status([version, code]: [u8; 2]) -> Result<(), ProxyError> {
    if version != VERSION {
        return Err(ProxyError::Malformed(format!(
            "CONNECT reply has version {version:#04x}, not 5"
        )));
    }
    if code != 0 {
        return Err(ProxyError::SocksReply(code));
    }
    Ok(())
}

/// How many bytes of a reply follow its address type `atyp` and the first
/// address byte `first` (a name's length, or an address's first octet):
/// the rest of the address and the 2-byte port. At most 255 + 2.
fn bound_address_rest(atyp: u8, first: u8) -> Result<usize, ProxyError> {
    match atyp {
        ATYP_V4 => Ok(4 - 1 + 2),
        ATYP_V6 => Ok(16 - 1 + 2),
        ATYP_NAME => Ok(usize::from(first) + 2),
        other => Err(ProxyError::Malformed(format!(
            "CONNECT reply has address type {other:#04x}"
        ))),
    }
}

async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> Result<(), ProxyError> {
    stream
        .write_all(bytes)
        .await
        .map_err(|e| ProxyError::io(e, "handshake"))
}

async fn read<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
    during: &'static str,
) -> Result<(), ProxyError> {
    stream
        .read_exact(buf)
        .await
        .map(drop)
        .map_err(|e| ProxyError::io(e, during))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::HostPort;
    use std::net::SocketAddr;

    fn creds() -> Credentials {
        Credentials {
            shown_user: "u".to_owned(),
            user: b"u".to_vec(),
            password: b"pw".to_vec(),
        }
    }

    /// Runs the handshake against a scripted proxy; returns what the client
    /// wrote and the result.
    async fn against(
        reply: &[u8],
        target: &Target<'_>,
        credentials: Option<&Credentials>,
    ) -> (Vec<u8>, Result<(), ProxyError>) {
        let (mut client, mut proxy) = tokio::io::duplex(4096);
        proxy.write_all(reply).await.unwrap();
        drop(proxy.shutdown().await);
        let result = handshake(&mut client, target, credentials).await;
        drop(client);
        let mut sent = Vec::new();
        proxy.read_to_end(&mut sent).await.unwrap();
        (sent, result)
    }

    #[tokio::test]
    async fn no_auth_connect_to_an_address() {
        let addr: SocketAddr = "10.1.2.3:8080".parse().unwrap();
        let reply = [5, 0, 5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90];
        let (sent, result) = against(&reply, &Target::Addr(addr), None).await;
        result.unwrap();
        assert_eq!(sent, [5, 1, 0, 5, 1, 0, 1, 10, 1, 2, 3, 0x1f, 0x90]);
    }

    #[tokio::test]
    async fn a_name_goes_to_the_proxy_with_credentials() {
        let hp = HostPort {
            host: Host::Name("db.internal".to_owned()),
            port: 5432,
        };
        let reply = [5, 2, 1, 0, 5, 0, 0, 3, 2, b'h', b'i', 0, 80];
        let (sent, result) = against(&reply, &Target::Name(&hp), Some(&creds())).await;
        result.unwrap();
        let mut expected = vec![5, 2, 0, 2, 1, 1, b'u', 2, b'p', b'w', 5, 1, 0, 3, 11];
        expected.extend_from_slice(b"db.internal");
        expected.extend_from_slice(&5432u16.to_be_bytes());
        assert_eq!(sent, expected);
    }

    #[tokio::test]
    async fn refusals_and_broken_replies_are_typed() {
        let addr = Target::Addr("127.0.0.1:9".parse().unwrap());
        let cases: [(&[u8], Option<Credentials>, &str); 8] = [
            (
                &[5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0],
                None,
                "connection refused (SOCKS5 reply 0x05)",
            ),
            (&[5, 0, 5, 2], None, "not allowed by ruleset"),
            (&[5, 0xff], None, "requires authentication"),
            (&[5, 0xff], Some(creds()), "neither no authentication"),
            (
                &[5, 2, 1, 1],
                Some(creds()),
                "rejected the user name or password",
            ),
            (
                &[5],
                None,
                "closed the connection during the greeting reply",
            ),
            (
                &[5, 0, 5, 0, 0, 1, 127],
                None,
                "closed the connection during the CONNECT reply",
            ),
            (&[4, 0], None, "not 5"),
        ];
        for (reply, credentials, expected) in cases {
            let (_, result) = against(reply, &addr, credentials.as_ref()).await;
            let err = result.unwrap_err().to_string();
            assert!(err.contains(expected), "{reply:?}: {err}");
        }
        let (_, result) = against(&[5, 2], &addr, None).await;
        assert!(result.unwrap_err().to_string().contains("not offered"));
        let (_, result) = against(&[5, 0, 5, 0, 0, 9, 0], &addr, None).await;
        assert!(result
            .unwrap_err()
            .to_string()
            .contains("address type 0x09"));
    }

    #[test]
    fn a_too_long_name_is_refused_before_sending() {
        let hp = HostPort {
            host: Host::Name("a".repeat(256)),
            port: 1,
        };
        assert!(connect_request(&Target::Name(&hp)).is_err());
    }
}
