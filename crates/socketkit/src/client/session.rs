//! The client's side of the framed protocol's opening (PROTOCOL.md,
//! "Handshake"), shared by exec and file transfer, and the helpers both use
//! to read replies.

use futures_util::{SinkExt, StreamExt};
use tokio_util::codec::Framed;

use crate::error::{Error, ErrorKind, Result};
use crate::protocol::exec::{ClientHello, ErrorMessage, Ready, Refusal, ServerHello};
use crate::protocol::{Frame, FrameCodec, FrameType, VERSION};
use crate::transport::Stream;

/// A stream speaking the framed protocol.
pub(crate) type Wire = Framed<Stream, FrameCodec>;

/// Reads the greeting, checks it is `service` speaking our version, sends
/// our `HELLO` (with `token` only if asked for one), and waits for `READY`.
/// Returns the wire, the greeting, and the identity the server granted.
pub(crate) async fn open(
    stream: Stream,
    token: Option<String>,
    service: &str,
) -> Result<(Wire, ServerHello, String)> {
    let mut wire = Framed::new(stream, FrameCodec::new());
    let hello = next_frame(&mut wire).await?;
    if hello.kind == FrameType::ERROR {
        // A server with too many connections authenticating says so first.
        let error = hello.parse().map_err(|e| protocol_error(e.to_string()))?;
        return Err(refused(&error));
    }
    if hello.kind != FrameType::HELLO {
        return Err(protocol_error(format!(
            "the server did not greet with HELLO: is it a socketkit {service} server?"
        )));
    }
    let server: ServerHello = hello.parse().map_err(|e| protocol_error(e.to_string()))?;
    if server.protocol != VERSION {
        return Err(protocol_error(format!(
            "the server speaks protocol {}, this client {VERSION}",
            server.protocol
        )));
    }
    if server.service != service {
        return Err(protocol_error(format!(
            "this is a {} server, not {service}",
            server.service
        )));
    }
    let wants_token = server.auth.iter().any(|a| a == "token");
    if wants_token && token.is_none() {
        return Err(Error::new(
            ErrorKind::Auth,
            "the server asks for a token and none was given",
        ));
    }
    let answer = ClientHello {
        protocol: VERSION,
        client: format!("socketkit {}", env!("CARGO_PKG_VERSION")),
        token: token.filter(|_| wants_token),
    };
    wire.send(Frame::control(FrameType::HELLO, &answer)).await?;
    let ready: Ready = expect(next_frame(&mut wire).await?, FrameType::READY)?;
    Ok((wire, server, ready.identity))
}

pub(crate) fn protocol_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Protocol, message)
}

/// The server's `ERROR` as an error of the matching kind.
pub(crate) fn refused(error: &ErrorMessage) -> Error {
    let kind = match error.kind {
        Refusal::Auth | Refusal::Denied => ErrorKind::Auth,
        Refusal::Protocol | Refusal::Version | Refusal::Internal | Refusal::Unknown => {
            ErrorKind::Protocol
        }
        _ => ErrorKind::Io,
    };
    Error::with_source(kind, "server refused", error.clone())
}

pub(crate) async fn next_frame(wire: &mut Wire) -> Result<Frame> {
    match wire.next().await {
        Some(frame) => Ok(frame?),
        None => Err(Error::new(
            ErrorKind::Io,
            "the server closed the connection",
        )),
    }
}

/// The expected control message, or the server's `ERROR` as an error.
pub(crate) fn expect<T: serde::de::DeserializeOwned>(frame: Frame, kind: FrameType) -> Result<T> {
    let parse_error = |e: crate::protocol::FrameError| protocol_error(e.to_string());
    if frame.kind == FrameType::ERROR {
        return Err(refused(&frame.parse().map_err(parse_error)?));
    }
    if frame.kind != kind {
        return Err(protocol_error(format!(
            "expected a frame of type {kind}, got {}",
            frame.kind
        )));
    }
    frame.parse().map_err(parse_error)
}
