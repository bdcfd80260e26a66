//! The check the message targets share.

use std::fmt::Debug;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use socketkit::protocol::{Frame, FrameType};

/// Parses `body` as a `T` in a frame of `kind`; a message that parses must
/// encode and parse back to itself. Returns the message.
pub fn round_trip<T>(kind: FrameType, body: &[u8]) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let frame = Frame::data(kind, Bytes::copy_from_slice(body));
    let message: T = frame.parse().ok()?;
    let again: T = Frame::control(kind, &message)
        .parse()
        .expect("what parsed once parses again");
    assert_eq!(again, message);
    Some(message)
}
