//! Every exec control message parsed from arbitrary bytes the way the
//! client and server parse them (`Frame::parse`); what parses must survive
//! a round trip through `Frame::control`, and the helpers a parsed message
//! feeds (`describe`, `shell_status`, `keeps_connection`) must not panic.
#![no_main]

#[path = "messages.rs"]
mod messages;

use libfuzzer_sys::fuzz_target;
use socketkit::protocol::exec::{
    ClientHello, ErrorMessage, Exit, Ready, Run, ServerHello, SignalRequest, Started,
};
use socketkit::protocol::FrameType;

fuzz_target!(|data: &[u8]| {
    messages::round_trip::<ServerHello>(FrameType::HELLO, data);
    messages::round_trip::<ClientHello>(FrameType::HELLO, data);
    messages::round_trip::<Ready>(FrameType::READY, data);
    if let Some(run) = messages::round_trip::<Run>(FrameType::RUN, data) {
        let _ = run.describe();
    }
    messages::round_trip::<Started>(FrameType::STARTED, data);
    messages::round_trip::<SignalRequest>(FrameType::SIGNAL, data);
    if let Some(exit) = messages::round_trip::<Exit>(FrameType::EXIT, data) {
        let _ = exit.shell_status();
    }
    if let Some(error) = messages::round_trip::<ErrorMessage>(FrameType::ERROR, data) {
        let _ = (error.kind.keeps_connection(), error.kind.to_string());
    }
});
