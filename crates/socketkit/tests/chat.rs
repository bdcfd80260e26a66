//! The chat through the public API: a [`Chat`] server bound with
//! `Server::bind` on loopback TCP, and clients that are raw sockets reading
//! and writing lines as `nc` would: two members in a room, a message
//! delivered, and a nickname clash answered with the typed refusal's words.

use socketkit::services::chat::text::{check_nick, check_room, ChatRefusal};
use socketkit::services::chat::ChatConfig;
use socketkit::services::Chat;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

mod util;
use util::PATIENCE;

async fn start() -> util::Running {
    util::start(|server| server.serve(Chat::new(ChatConfig::default()))).await
}

/// A terminal client: lines in, lines out.
struct Client {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
    /// Every line read so far, for failure messages.
    seen: Vec<String>,
}

impl Client {
    /// Connects and answers the nickname prompt with `nick`.
    async fn join(server: &util::Running, nick: &str) -> Client {
        let (read, write) = TcpStream::connect(server.addr())
            .await
            .unwrap()
            .into_split();
        let mut client = Client {
            lines: BufReader::new(read).lines(),
            write,
            seen: Vec::new(),
        };
        client.wait_for(|l| l.contains("Your nickname?")).await;
        client.say(nick).await;
        client
    }

    async fn say(&mut self, line: &str) {
        self.write
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// Reads lines until one matches; that line.
    async fn wait_for(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            let line = tokio::time::timeout(PATIENCE, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("nothing matching after {:?}", self.seen))
                .unwrap()
                .unwrap_or_else(|| panic!("closed after {:?}", self.seen));
            let line = line.trim_end_matches('\r').to_owned();
            self.seen.push(line.clone());
            if wanted(&line) {
                return line;
            }
        }
    }
}

#[tokio::test]
async fn two_members_in_a_room_hear_each_other() {
    let server = start().await;
    let mut alice = Client::join(&server, "alice").await;
    alice
        .wait_for(|l| l.starts_with("*** Welcome, alice!"))
        .await;
    let mut bob = Client::join(&server, "bob").await;
    bob.wait_for(|l| l.starts_with("*** Welcome, bob!")).await;
    let joined = alice.wait_for(|l| l.contains("bob joined")).await;
    assert_eq!(joined, "*** bob joined #lobby");

    bob.say("hello, alice").await;
    let heard = alice.wait_for(|l| l.starts_with('<')).await;
    assert_eq!(heard, "<bob> hello, alice");
    alice.say("/me waves").await;
    let heard = bob.wait_for(|l| l.starts_with("* ")).await;
    assert_eq!(heard, "* alice waves");
}

#[tokio::test]
async fn a_nickname_clash_gets_a_guest_name_and_the_reason() {
    let server = start().await;
    let mut alice = Client::join(&server, "alice").await;
    alice
        .wait_for(|l| l.starts_with("*** Welcome, alice!"))
        .await;

    // Case does not make a nickname someone else's.
    let mut other = Client::join(&server, "ALICE").await;
    let welcome = other.wait_for(|l| l.starts_with("*** Welcome, ")).await;
    assert!(welcome.starts_with("*** Welcome, guest-"), "{welcome}");
    let error = other.wait_for(|l| l.starts_with("error: ")).await;
    let expected = ChatRefusal::NickTaken("ALICE".to_owned()).to_string();
    assert!(
        error.starts_with(&format!("error: {expected}; you are guest-")),
        "{error}"
    );

    other.say("/nick alice").await;
    let error = other.wait_for(|l| l.starts_with("error: ")).await;
    assert_eq!(error, "error: the nickname alice is taken");
    other.say("/nick #alice").await;
    let error = other.wait_for(|l| l.starts_with("error: ")).await;
    assert_eq!(error, format!("error: {}", ChatRefusal::NickStart));
    other.say("/nick carol").await;
    let renamed = alice.wait_for(|l| l.contains("is now known as")).await;
    assert!(renamed.ends_with("is now known as carol"), "{renamed}");
}

#[test]
fn names_are_checked_with_typed_reasons() {
    assert_eq!(check_nick("alice"), Ok(()));
    assert_eq!(check_nick(""), Err(ChatRefusal::EmptyNick));
    assert_eq!(check_nick("-x"), Err(ChatRefusal::NickStart));
    assert_eq!(check_nick("two words"), Err(ChatRefusal::NickChars));
    assert_eq!(check_nick(&"x".repeat(33)), Err(ChatRefusal::NickTooLong));
    assert_eq!(check_room("#rust"), Ok("rust"));
    assert_eq!(check_room("a b"), Err(ChatRefusal::RoomName));
}
