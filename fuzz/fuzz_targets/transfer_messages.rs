//! Every transfer control message parsed from arbitrary bytes the way
//! `send` and `recv` parse them (`Frame::parse`); what parses must survive
//! a round trip through `Frame::control`.
#![no_main]

#[path = "messages.rs"]
mod messages;

use libfuzzer_sys::fuzz_target;
use socketkit::protocol::exec::ErrorMessage;
use socketkit::protocol::transfer::{Accept, Digest, Offer, Start};
use socketkit::protocol::FrameType;

fuzz_target!(|data: &[u8]| {
    messages::round_trip::<Offer>(FrameType::OFFER, data);
    messages::round_trip::<Accept>(FrameType::ACCEPT, data);
    messages::round_trip::<Start>(FrameType::START, data);
    messages::round_trip::<Digest>(FrameType::END, data);
    messages::round_trip::<Digest>(FrameType::DONE, data);
    messages::round_trip::<ErrorMessage>(FrameType::ERROR, data);
});
