//! The PROXY protocol decoder on arbitrary bytes under an arbitrary cap: it
//! never panics; a header takes at most its bytes and never more than the
//! cap allows, whatever follows it; every shorter prefix of a header asks for
//! more; `Incomplete` asks for more than it has; an error stays an error
//! however many bytes follow; and a decoded header re-encodes to bytes that
//! decode to the same addresses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketkit::proxy_header::{decode, Decoded, ProxyHeader, MIN_MAX_LEN, V1_MAX_LEN, V2_MAX_LEN};

/// Above this, checking every prefix costs quadratic time; sample instead.
const EVERY_PREFIX: usize = 300;

fuzz_target!(|data: &[u8]| {
    // Two bytes pick the cap (from below MIN_MAX_LEN to above V2_MAX_LEN),
    // one the point at which the bytes are cut for the error check.
    let Some((&[c0, c1, cut], buf)) = data.split_first_chunk::<3>() else {
        return;
    };
    let cap = usize::from(u16::from_le_bytes([c0, c1])).saturating_mul(2);
    let effective_cap = cap.clamp(MIN_MAX_LEN, V2_MAX_LEN);
    let outcome = decode(buf, cap);
    match &outcome {
        Ok(Decoded::Header { header, len }) => {
            let len = *len;
            assert!(len <= buf.len(), "{len} > {}", buf.len());
            assert!(len <= V1_MAX_LEN.max(effective_cap), "{len} over the cap");
            // What follows the header does not matter.
            assert_eq!(decode(&buf[..len], cap), outcome);
            // Nothing shorter is a header.
            let mut cuts: Vec<usize> = if len <= EVERY_PREFIX {
                (0..len).collect()
            } else {
                vec![0, 1, 12, 15, 16, len / 2, len - 1]
            };
            cuts.retain(|&n| n < len);
            for n in cuts {
                match decode(&buf[..n], cap) {
                    Ok(Decoded::Incomplete { at_least }) => {
                        assert!(
                            at_least > n && at_least <= len,
                            "{n}: at least {at_least}, header {len}"
                        )
                    }
                    other => panic!("prefix {n} of a {len}-byte header: {other:?}"),
                }
            }
            reencode(header, cap);
        }
        Ok(Decoded::Incomplete { at_least }) => {
            assert!(*at_least > buf.len());
            assert!(*at_least <= V1_MAX_LEN.max(effective_cap));
        }
        Err(_) => {}
    }
    // An error is final: a prefix that failed keeps failing with more bytes.
    let cut = usize::from(cut).min(buf.len());
    if decode(&buf[..cut], cap).is_err() {
        assert!(
            outcome.is_err(),
            "prefix {cut} failed, the whole did not: {outcome:?}"
        );
    }
});

fn reencode(header: &ProxyHeader, cap: usize) {
    for version in [
        socketkit::proxy_header::Version::V1,
        socketkit::proxy_header::Version::V2,
    ] {
        let bytes = header.encode(version);
        let Ok(Decoded::Header { header: again, len }) = decode(&bytes, cap) else {
            panic!("{header:?} encoded as {bytes:?} does not decode");
        };
        assert_eq!(len, bytes.len());
        // v1 cannot carry Unix paths; either way no address is invented.
        let v1_unix = version == socketkit::proxy_header::Version::V1
            && matches!(
                header.addresses,
                socketkit::proxy_header::Addresses::Unix { .. }
            );
        if v1_unix {
            assert_eq!(again.source(), None);
        } else {
            assert_eq!(
                again.source().map(canonical),
                header.source().map(canonical),
                "{header:?} via {bytes:?}"
            );
            assert_eq!(
                again.destination().map(canonical),
                header.destination().map(canonical)
            );
        }
    }
}

/// IPv4-mapped addresses compare as IPv4: the encoder puts both addresses
/// in one family.
fn canonical(addr: socketkit::transport::SocketAddress) -> socketkit::transport::SocketAddress {
    match addr {
        socketkit::transport::SocketAddress::Inet(a) => socketkit::transport::SocketAddress::Inet(
            std::net::SocketAddr::new(a.ip().to_canonical(), a.port()),
        ),
        other => other,
    }
}
