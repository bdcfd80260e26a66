//! The SOCKS5 decoders on arbitrary bytes, fed as a server reads them:
//! each asks for more until it decodes or fails, never for fewer bytes
//! than it has or more than `MAX_MESSAGE`, and never claims more than it
//! was given; a decoded UDP header's payload offset lies inside the
//! datagram, and an IP source re-encodes to the same header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketkit::addr::Host;
use socketkit::services::proxy::socks5::{
    decode_credentials, decode_greeting, decode_request, decode_udp, encode_udp_header, Decoded,
    WireError, MAX_MESSAGE,
};

/// Feeds `data` the way the server's reader does: exactly as many bytes
/// as the decoder asks for.
fn read_as_server<T>(data: &[u8], decode: fn(&[u8]) -> Result<Decoded<T>, WireError>) {
    let mut have = 0;
    loop {
        let Some(buf) = data.get(..have) else {
            return;
        };
        match decode(buf) {
            Ok(Decoded::Need(total)) => {
                assert!(total > have, "asked for {total} with {have}");
                assert!(total <= MAX_MESSAGE, "asked for {total}");
                if total > data.len() {
                    return;
                }
                have = total;
            }
            Ok(Decoded::Done(_, used)) => {
                assert!(used <= have, "used {used} of {have}");
                return;
            }
            Err(_) => return,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    read_as_server(data, decode_greeting);
    read_as_server(data, decode_credentials);
    read_as_server(data, decode_request);
    // Whole buffers too: a decoder must not depend on being fed exactly.
    let _ = (
        decode_greeting(data),
        decode_credentials(data),
        decode_request(data),
    );
    if let Ok(packet) = decode_udp(data) {
        assert!(packet.payload_at <= data.len());
        if let Host::Ip(ip) = packet.destination.host {
            // A name spelling an address decodes as that address; only
            // the binary forms re-encode byte for byte.
            if ip.to_canonical() == ip && data.get(3) != Some(&3) {
                let source = std::net::SocketAddr::new(ip, packet.destination.port);
                let mut header = encode_udp_header(source);
                header[2] = packet.fragment;
                assert_eq!(&data[..packet.payload_at], &header[..]);
            }
        }
    }
});
