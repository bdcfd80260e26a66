//! `socketkit serve chat` over loopback against `nc` and nc-style socket
//! clients: rooms, history, presence, every command, the safety limits,
//! slow consumers, the bot and graceful shutdown.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::util::chat::{ChatServer, Client};

#[test]
fn an_nc_user_and_a_socket_user_talk_both_ways() {
    let server = ChatServer::start(&[]);
    let (host, port) = server.addr.split_once(':').unwrap();
    let mut nc = Command::new("nc")
        .args(["-N", host, port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run nc (netcat-openbsd)");
    let mut nc_in = nc.stdin.take().unwrap();
    let (lines_tx, nc_lines) = std::sync::mpsc::channel();
    let stdout = BufReader::new(nc.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let nc_expect = |needle: &str| loop {
        let line = nc_lines
            .recv_timeout(crate::util::chat::WAIT)
            .expect(needle);
        if line.contains(needle) {
            return line;
        }
    };
    nc_expect("Your nickname?");
    nc_in.write_all(b"ncuser\n").unwrap();
    nc_expect("*** Welcome, ncuser!");

    let mut bob = Client::join(&server.addr, "bob");
    nc_expect("*** bob joined #lobby");
    nc_in.write_all(b"hi bob, from nc\r\n").unwrap();
    assert_eq!(bob.expect("hi bob"), "<ncuser> hi bob, from nc");
    bob.send("hello nc user");
    assert_eq!(nc_expect("hello nc"), "<bob> hello nc user");

    drop(nc_in);
    bob.expect("*** ncuser left #lobby");
    nc.wait().unwrap();
    assert!(server.stop().success());
}

#[test]
fn two_hundred_clients_in_two_rooms_each_hear_their_own_room() {
    let server = ChatServer::start(&["--rate", "0", "--history", "0"]);
    let mut clients: Vec<(Client, &str)> = (0..200)
        .map(|i| {
            let mut client = Client::join(&server.addr, &format!("user{i}"));
            let room = if i % 2 == 0 { "red" } else { "blue" };
            client.send(&format!("/join {room}"));
            client.expect(&format!("*** You are in #{room}"));
            (client, room)
        })
        .collect();
    for (i, (client, room)) in clients.iter_mut().enumerate() {
        client.send(&format!("message {i} for {room}"));
    }
    for (i, (client, room)) in clients.iter_mut().enumerate() {
        let mut heard = 0;
        while heard < 99 {
            let line = client.line().expect("connection stays open");
            if line.starts_with('<') {
                assert!(
                    line.ends_with(&format!(" for {room}")),
                    "{line} reached #{room}"
                );
                assert!(
                    !line.starts_with(&format!("<user{i}>")),
                    "own message echoed"
                );
                heard += 1;
            }
        }
    }
    assert!(server.stop().success());
}

#[test]
fn joining_shows_history_and_who_is_here() {
    let server = ChatServer::start(&["--rate", "0"]);
    let mut carol = Client::join(&server.addr, "carol");
    let mut alice = Client::join(&server.addr, "alice");
    for i in 1..=25 {
        alice.send(&format!("note {i}"));
    }
    carol.expect("<alice> note 25");
    let mut bob = Client::join(&server.addr, "bob");
    assert_eq!(bob.line().unwrap(), "*** You are in #lobby");
    for i in 6..=25 {
        assert_eq!(bob.line().unwrap(), format!("<alice> note {i}"));
    }
    assert_eq!(bob.line().unwrap(), "*** In #lobby (3): alice, bob, carol");
    alice.expect("*** bob joined #lobby");
    assert!(server.stop().success());
}

#[test]
fn every_command() {
    let server = ChatServer::start(&["--rate", "0"]);
    let mut alice = Client::join(&server.addr, "alice");
    let mut bob = Client::join(&server.addr, "bob");
    alice.expect("*** bob joined #lobby");

    alice.send("/help");
    alice.expect("/msg NICK TEXT");
    alice.send("/me waves");
    assert_eq!(bob.expect("waves"), "* alice waves");
    alice.send("//slash is not a command");
    assert_eq!(bob.expect("slash"), "<alice> /slash is not a command");

    alice.send("/msg bob a secret");
    assert_eq!(alice.expect("secret"), "-> *bob* a secret");
    assert_eq!(bob.expect("secret"), "*alice* a secret");
    alice.send("/msg nobody hello");
    alice.expect("error: no one called nobody is here");
    alice.send("/msg bob");
    alice.expect("error: usage: /msg NICK TEXT");

    alice.send("/nick BOB");
    alice.expect("error: the nickname BOB is taken");
    alice.send("/nick bad#name!");
    alice.expect("error: nicknames use letters");
    alice.send(&format!("/nick {}", "x".repeat(33)));
    alice.expect("error: nicknames are at most 32 characters");
    alice.send("/nick alicia");
    assert_eq!(bob.expect("known as"), "*** alice is now known as alicia");

    alice.send("/join #Rust");
    alice.expect("*** You are in #Rust");
    alice.expect("*** In #Rust (1): alicia");
    assert_eq!(bob.expect("left"), "*** alicia left #lobby");
    bob.send("/rooms");
    bob.expect("*** Rooms: #lobby (1), #Rust (1)");
    bob.send("/join rust");
    bob.expect("*** In #Rust (2): alicia, bob");
    assert_eq!(alice.expect("joined"), "*** bob joined #Rust");
    bob.send("/join rust");
    bob.expect("error: you are already in #rust");
    bob.send("/join no spaces");
    bob.expect("error: usage: /join ROOM");
    bob.send("/join #");
    bob.expect("error: room names are 1 to 32");
    bob.send("/who");
    bob.expect("*** In #Rust (2): alicia, bob");
    bob.send("/frobnicate");
    bob.expect("error: unknown command /frobnicate");

    alice.send("/quit see you");
    alice.expect("*** Bye!");
    alice.expect_closed();
    assert_eq!(bob.expect("left"), "*** alicia left #Rust (see you)");
    assert!(server.stop().success());
}

#[test]
fn nicknames_that_cannot_be_had_become_guest_names() {
    let server = ChatServer::start(&[]);
    let first = Client::join(&server.addr, "");
    assert!(first
        .seen
        .last()
        .unwrap()
        .starts_with("*** Welcome, guest-"));
    let _alice = Client::join(&server.addr, "alice");
    let mut second = Client::join(&server.addr, "Alice");
    assert!(second
        .seen
        .last()
        .unwrap()
        .starts_with("*** Welcome, guest-"));
    second.expect("error: the nickname Alice is taken; you are guest-");
    let mut third = Client::join(&server.addr, "not valid");
    third.expect("error: nicknames use letters");
    assert!(server.stop().success());
}

#[test]
fn terminal_escapes_and_control_characters_are_stripped() {
    let server = ChatServer::start(&[]);
    let mut mallory = Client::join(&server.addr, "mallory");
    let mut victim = Client::join(&server.addr, "victim");
    mallory.send_bytes(
        b"\x1b[2J\x1b]0;owned\x07hi\x1b[31m there\x07\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\x00\x7f\xc2\x9b6n \xe2\x80\xaereversed\n",
    );
    assert_eq!(victim.expect("hi"), "<mallory> hi therelink reversed");
    mallory.send_bytes(b"/me \x1b]52;c;cGF5bG9hZA==\x07copies\n");
    assert_eq!(victim.expect("copies"), "* mallory copies");
    assert!(server.stop().success());
}

#[test]
fn overlong_and_invalid_lines_get_errors_and_the_connection_stays() {
    let server = ChatServer::start(&["--max-message", "100"]);
    let mut alice = Client::join(&server.addr, "alice");
    let mut bob = Client::join(&server.addr, "bob");
    let mut long = vec![b'x'; 150];
    long.extend_from_slice(b"\n\xff\xfe not utf-8\nstill here\n");
    alice.send_bytes(&long);
    alice.expect("error: that line is longer than 100 bytes; it was not sent");
    alice.expect("error: that line is not valid UTF-8; it was not sent");
    assert_eq!(bob.expect("<alice>"), "<alice> still here");
    assert!(server.stop().success());
}

#[test]
fn a_flooding_client_is_told_to_slow_down_and_loses_nothing() {
    let server = ChatServer::start(&["--rate", "20"]);
    let mut alice = Client::join(&server.addr, "alice");
    let mut bob = Client::join(&server.addr, "bob");
    for i in 0..60 {
        alice.send(&format!("flood {i}"));
    }
    alice.expect("*** Slow down: at most 20 messages a second");
    for i in 0..60 {
        assert_eq!(bob.expect("flood"), format!("<alice> flood {i}"));
    }
    assert!(server.stop().success());
}

#[test]
fn a_client_that_stops_reading_is_dropped_and_the_rest_get_everything_in_order() {
    // Queues of 8 MiB give the reading clients slack on a loaded machine;
    // the stalled client still overflows its queue (or its 2 s write
    // deadline) long before the 10 MB flood ends.
    let server = ChatServer::start(&[
        "--rate",
        "0",
        "--queue",
        "100000",
        "--queue-bytes",
        "8388608",
        "--write-timeout",
        "2s",
    ]);
    let mut stalled = Client::join(&server.addr, "stalled");
    let mut reader = Client::join(&server.addr, "reader");
    let senders: Vec<Client> = (0..2)
        .map(|i| Client::join(&server.addr, &format!("sender{i}")))
        .collect();
    reader.send("/who");
    reader.expect("*** In #lobby (4)");
    // 10,000 lines of ~1 KB: far more than the stalled client's socket
    // buffers and its 1 MiB queue can hold. The senders stay at most
    // WINDOW lines ahead of the slowest reading client (a debug build on a
    // busy machine reads slowly), so only the stalled client falls behind.
    let heard: Arc<Vec<AtomicU32>> = Arc::new((0..6).map(|_| AtomicU32::new(0)).collect());
    let writers: Vec<_> = senders
        .iter()
        .enumerate()
        .map(|(id, sender)| {
            let mut stream = std::io::BufWriter::new(sender.stream_clone());
            let heard = heard.clone();
            std::thread::spawn(move || {
                let padding = "p".repeat(1000);
                for seq in 0..5000 {
                    if seq % 100 == 0 {
                        stream.flush().unwrap();
                        wait_for_listeners(&heard, id, seq);
                    }
                    writeln!(stream, "{id} {seq} {padding}").unwrap();
                }
                stream.flush().unwrap();
            })
        })
        .collect();
    let listeners: Vec<_> = [(reader, vec![0, 1])]
        .into_iter()
        .chain(
            senders
                .into_iter()
                .enumerate()
                .map(|(id, s)| (s, vec![1 - id])),
        )
        .enumerate()
        .map(|(listener, (client, from))| {
            let heard = heard.clone();
            std::thread::spawn(move || {
                hear_all_in_order(client, &from, &heard[listener * 2..][..2])
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    for listener in listeners {
        let (mut client, saw_drop) = listener.join().unwrap();
        if !saw_drop {
            client.expect(STALLED_DROPPED);
        }
    }
    stalled.expect_closed();
    assert!(server.stop().success());
}

#[test]
fn a_client_that_falls_behind_its_room_is_dropped_once_it_reads_again() {
    // A write deadline that never fires here: what trips is how far the
    // room's log runs ahead of the client (--queue 100 lines).
    let server = ChatServer::start(&["--rate", "0", "--queue", "100", "--write-timeout", "60s"]);
    let mut lagging = Client::join(&server.addr, "lagging");
    let mut reader = Client::join(&server.addr, "reader");
    let mut sender = Client::join(&server.addr, "sender");
    reader.send("/who");
    reader.expect("*** In #lobby (3)");
    // 10 MB in rounds of 50 lines, each heard by the reader before the
    // next: the reader is never 100 lines behind, while the lagging client,
    // reading nothing, fills its socket buffers (a few MB) and falls
    // thousands behind.
    // (When the server could send it only a few hundred KB, the lagging
    // client is dropped already during the flood, which the reader hears.)
    const DROPPED: &str = "*** lagging left #lobby (too slow: disconnected)";
    let padding = "p".repeat(1000);
    let mut reader_saw_drop = false;
    for round in 0..200 {
        let lines: String = (0..50)
            .map(|i| format!("{} {padding}\n", round * 50 + i))
            .collect();
        sender.send_bytes(lines.as_bytes());
        for i in 0..50 {
            let mut line = reader.line().expect("the reader stays connected");
            if line == DROPPED && !reader_saw_drop {
                reader_saw_drop = true;
                line = reader.line().expect("the reader stays connected");
            }
            assert_eq!(line, format!("<sender> {} {padding}", round * 50 + i));
            reader.seen.clear();
        }
    }
    // Reading again, it gets an unbroken prefix of the lines, then the
    // reason, then the end.
    let mut next = 0;
    loop {
        let line = lagging.line().expect("told why before being closed");
        if line == "error: you are not reading fast enough to keep up; disconnecting" {
            break;
        }
        if let Some(body) = line.strip_prefix("<sender> ") {
            assert_eq!(body.split(' ').next(), Some(next.to_string().as_str()));
            next += 1;
        }
        lagging.seen.clear();
    }
    assert!(next < 10_000, "dropped only after hearing everything");
    lagging.expect_closed();
    if !reader_saw_drop {
        assert_eq!(reader.line().as_deref(), Some(DROPPED));
    }
    assert!(server.stop().success());
}

/// Runs tests/peers/web_attacker.py (raw sockets, no socketkit code)
/// against the page at `web` (`http://HOST:PORT/`); returns its stdout.
fn web_attacker(web: &str, command: &str, args: &[&str]) -> String {
    web_attacker_tls(web, None, command, args)
}

/// The same over TLS for an `https://` page, verified against `ca`.
fn web_attacker_tls(web: &str, ca: Option<&str>, command: &str, args: &[&str]) -> String {
    let addr = web_host(web);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/web_attacker.py");
    let tls = ca.map(|ca| ["--tls", ca]);
    let out = Command::new("python3")
        .arg(script)
        .args(tls.iter().flatten())
        .arg(command)
        .arg(&addr)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "web_attacker.py {command} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `HOST:PORT` of the page's `http://HOST:PORT/` (or `https://`).
fn web_host(web: &str) -> String {
    web.trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned()
}

#[test]
fn the_web_page_refuses_other_sites_websockets_and_foreign_host_names() {
    let server = ChatServer::start(&[
        "--web",
        "127.0.0.1:0",
        "--web-origin",
        "https://chat.example.com",
        "--web-host",
        "chat.local",
    ]);
    let web = server.web.clone().unwrap();
    let host = web_host(&web);
    let port = host.rsplit_once(':').unwrap().1;
    let head = |path: &str, extra: &[&str]| web_attacker(&web, "head", &[&[path], extra].concat());
    let status = |path: &str, extra: &[&str]| {
        let head = head(path, extra);
        head.lines().next().unwrap_or_default().to_owned()
    };
    // Cross-site WebSocket hijacking: a page on another site opens /ws.
    let hijack = status("/ws", &["--upgrade", "--origin", "http://evil.example"]);
    assert!(hijack.starts_with("HTTP/1.1 403"), "{hijack}");
    let other_port = status("/ws", &["--upgrade", "--origin", "http://127.0.0.1:1"]);
    assert!(other_port.starts_with("HTTP/1.1 403"), "{other_port}");
    // DNS rebinding: the browser thinks it talks to evil.example, whose
    // page is then same-origin with the request; the Host gives it away.
    let rebound = format!("evil.example:{port}");
    let rebound_origin = format!("http://{rebound}");
    let page = status("/", &["--host", &rebound]);
    assert!(page.starts_with("HTTP/1.1 421"), "{page}");
    let socket = status(
        "/ws",
        &["--upgrade", "--host", &rebound, "--origin", &rebound_origin],
    );
    assert!(socket.starts_with("HTTP/1.1 421"), "{socket}");
    // The page's own origin, listed origins, named hosts, and clients that
    // are not browsers (no Origin) get in.
    let own = format!("http://{host}");
    for extra in [
        &["--upgrade", "--origin", own.as_str()][..],
        &["--upgrade", "--origin", "https://chat.example.com"],
        &["--upgrade"],
    ] {
        let line = status("/ws", extra);
        assert!(line.starts_with("HTTP/1.1 101"), "{extra:?}: {line}");
    }
    let named = status("/", &["--host", &format!("chat.local:{port}")]);
    assert!(named.starts_with("HTTP/1.1 200"), "{named}");
    // Every page: not in anyone's frame, no content sniffing.
    for path in ["/", "/app.js", "/style.css"] {
        let head = head(path, &[]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(
            head.contains("\r\ncontent-security-policy: frame-ancestors 'none'"),
            "{head}"
        );
        assert!(
            head.contains("\r\nx-content-type-options: nosniff"),
            "{head}"
        );
    }
    assert!(server.stop().success());
}

#[test]
fn the_web_page_over_tls_takes_its_own_https_origin_only() {
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path().to_str().unwrap();
    let made = Command::new(env!("CARGO_BIN_EXE_socketkit"))
        .args(["pki", "init", dir])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let (cert, key, ca) = (
        format!("{dir}/server.pem"),
        format!("{dir}/server-key.pem"),
        format!("{dir}/ca.pem"),
    );
    let server = ChatServer::start(&["--web", "tls://127.0.0.1:0", "--cert", &cert, "--key", &key]);
    let web = server.web.clone().unwrap();
    assert!(web.starts_with("https://127.0.0.1:"), "{web}");
    let host = web_host(&web);
    let status = |path: &str, extra: &[&str]| {
        let head = web_attacker_tls(&web, Some(&ca), "head", &[&[path], extra].concat());
        head.lines().next().unwrap_or_default().to_owned()
    };
    assert!(status("/", &[]).starts_with("HTTP/1.1 200"));
    let own = format!("https://{host}");
    let line = status("/ws", &["--upgrade", "--origin", &own]);
    assert!(line.starts_with("HTTP/1.1 101"), "{line}");
    // The same host and port, but not this page's scheme: another origin.
    let plain = format!("http://{host}");
    let line = status("/ws", &["--upgrade", "--origin", &plain]);
    assert!(line.starts_with("HTTP/1.1 403"), "{line}");
    assert!(server.stop().success());
}

#[test]
fn half_sent_request_heads_are_closed_after_the_handshake_timeout() {
    let server = ChatServer::start(&["--web", "127.0.0.1:0", "--handshake-timeout", "1s"]);
    let web = server.web.clone().unwrap();
    // Slowloris: 100 heads that never end. The bound is generous; the
    // server's deadline is 1 s.
    let out = web_attacker(&web, "half-heads", &["100", "15"]);
    assert_eq!(out.trim(), "closed 100 of 100");
    assert!(server.stop().success());
}

#[test]
fn silent_web_connections_count_against_max_conns_and_free_their_slot() {
    let server = ChatServer::start(&[
        "--web",
        "127.0.0.1:0",
        "--max-conns",
        "2",
        "--handshake-timeout",
        "1s",
    ]);
    let web = server.web.clone().unwrap();
    // Two connections that never send a byte hold both places: a third
    // client waits in the backlog until one of them is timed out.
    let out = web_attacker(&web, "wait-behind", &["2", "silent", "15"]);
    assert_answered_after_a_place_freed(&out, "HTTP/1.1 200");
    assert!(server.stop().success());
}

#[test]
fn web_pages_past_max_conns_wait_until_one_closes() {
    let server = ChatServer::start(&[
        "--web",
        "127.0.0.1:0",
        "--max-conns",
        "1",
        "--idle-timeout",
        "1s",
    ]);
    let web = server.web.clone().unwrap();
    // An open WebSocket that never answers pings holds the only place.
    let out = web_attacker(&web, "wait-behind", &["1", "websocket", "15"]);
    assert_answered_after_a_place_freed(&out, "HTTP/1.1 101");
    assert!(server.stop().success());
}

/// In `wait-behind` output: the waiting client got `status`, and only
/// after one of the connections holding the places was closed.
fn assert_answered_after_a_place_freed(out: &str, status: &str) {
    let lines: Vec<&str> = out.lines().collect();
    let answered = lines
        .iter()
        .position(|line| line.starts_with(&format!("waiter answered {status}")))
        .unwrap_or_else(|| panic!("the waiting client never got {status}:\n{out}"));
    assert!(
        lines[..answered]
            .iter()
            .any(|line| line.starts_with("held ")),
        "answered before a held connection closed:\n{out}"
    );
}

#[test]
fn a_websocket_that_does_not_answer_pings_is_closed_after_the_idle_timeout() {
    let server = ChatServer::start(&["--web", "127.0.0.1:0", "--idle-timeout", "2s"]);
    let web = server.web.clone().unwrap();
    let out = web_attacker(&web, "silent-websocket", &["20"]);
    let pings: u32 = out
        .trim()
        .strip_prefix("closed after ")
        .and_then(|rest| rest.strip_suffix(" pings"))
        .unwrap_or_else(|| panic!("the silent page was not closed: {out}"))
        .parse()
        .unwrap();
    assert!(pings >= 1, "closed without being pinged: {out}");
    assert!(server.stop().success());
}

const STALLED_DROPPED: &str = "*** stalled left #lobby (too slow: disconnected)";

/// Lines a sender may be ahead of the slowest reading client.
const WINDOW: u32 = 400;

/// Waits (bounded) until every client that reads sender `id` has heard
/// all but WINDOW of its first `seq` lines.
fn wait_for_listeners(heard: &[AtomicU32], id: usize, seq: u32) {
    let deadline = std::time::Instant::now() + crate::util::chat::WAIT;
    let listening = |listener: usize| listener != 1 + id;
    while (0..3)
        .filter(|l| listening(*l))
        .any(|l| heard[l * 2 + id].load(Ordering::Acquire) + WINDOW < seq)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "readers stopped at {heard:?}, sender {id} at {seq}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Reads until every sender in `from` was heard 5000 times, in order,
/// counting into `heard[sender]`; also says whether the stalled client's
/// drop was announced meanwhile.
fn hear_all_in_order(mut client: Client, from: &[usize], heard: &[AtomicU32]) -> (Client, bool) {
    let mut next: HashMap<usize, u32> = from.iter().map(|id| (*id, 0)).collect();
    let mut saw_drop = false;
    while next.values().any(|seq| *seq < 5000) {
        let line = client.line().expect("a reading client stays connected");
        saw_drop |= line == STALLED_DROPPED;
        let Some(body) = line.strip_prefix("<sender") else {
            continue;
        };
        let mut words = body.split(' ');
        let (nick_id, id, seq) = (
            words.next().unwrap(),
            words.next().unwrap(),
            words.next().unwrap(),
        );
        let id: usize = id.parse().unwrap();
        assert_eq!(nick_id, format!("{id}>"));
        let expected = next.get_mut(&id).expect("only the other senders are heard");
        assert_eq!(
            seq.parse::<u32>().unwrap(),
            *expected,
            "sender {id} out of order"
        );
        *expected += 1;
        heard[id].store(*expected, Ordering::Release);
        client.seen.clear();
    }
    (client, saw_drop)
}

#[test]
fn the_bot_greets_and_answers() {
    let server = ChatServer::start(&["--bot"]);
    let mut alice = Client::join(&server.addr, "alice");
    alice.expect("*** In #lobby (2): alice, bot");
    alice.expect("<bot> Welcome, alice!");
    alice.send("!roll 3d6");
    let roll = alice.expect("<bot> alice rolls 3d6: ");
    let (dice, total) = roll.rsplit_once(": ").unwrap().1.split_once(" = ").unwrap();
    let sum: u32 = dice.split(" + ").map(|d| d.parse::<u32>().unwrap()).sum();
    assert!((3..=18).contains(&sum));
    assert_eq!(sum, total.parse::<u32>().unwrap());
    alice.send("!who");
    alice.expect("<bot> In #lobby: alice, bot");
    alice.send("!time");
    alice.expect("<bot> alice: it is ");
    alice.send("!help");
    alice.expect("<bot> I answer !help, !time, !who and !roll NdM");
    assert!(server.stop().success());
}

#[test]
fn shutdown_is_announced_and_every_connection_closed() {
    let server = ChatServer::start(&[]);
    let mut alice = Client::join(&server.addr, "alice");
    let mut bob = Client::join(&server.addr, "bob");
    alice.expect("*** bob joined #lobby");
    crate::util::chat::signal(server.pid(), "TERM");
    for client in [&mut alice, &mut bob] {
        assert_eq!(client.expect("shutting"), "*** Server shutting down. Bye!");
        let rest: Vec<String> = std::iter::from_fn(|| client.line()).collect();
        assert!(rest.is_empty(), "after the goodbye: {rest:?}");
    }
    assert!(server.stop_after_signal().success());
}

#[test]
fn chat_flags_on_another_service_are_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_socketkit"))
        .args(["serve", "echo", "127.0.0.1:0", "--bot"])
        .output()
        .unwrap();
    // A usage error (2) naming the service the flag belongs to.
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--bot belongs to `serve chat`, not `serve echo`"),
        "{stderr}"
    );
}
