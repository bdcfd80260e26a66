//! The chat bus is input too: attacks through a real `redis-server` with
//! `redis-cli` (forged lines, fake joins, room floods, unsigned, forged,
//! stale and replayed messages), Redis AUTH and TLS from the URL, and a
//! node killed right after a join, whose member must disappear.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::util::chat::{pki_init, signal, ChatServer, Client, Redis, WAIT};

const CHANNEL: &str = "socketkit:chat:events";
const SECRET: &str = "0123456789abcdef-bus-secret";

fn node(url: &str, extra: &[&str]) -> ChatServer {
    let mut args = vec!["--rate", "0", "--bus", url];
    args.extend_from_slice(extra);
    ChatServer::start(&args)
}

/// Waits until `count` servers subscribed to the channel: what is published
/// before that is lost to them.
fn wait_linked(redis: &Redis, count: u32) {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = redis.cli(&["PUBSUB", "NUMSUB", CHANNEL]);
        let subscribed: u32 = out
            .lines()
            .nth(1)
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        if subscribed >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{count} nodes never subscribed: {out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .try_into()
        .unwrap()
}

/// A bus payload from node `evil` (as the bus format has it: PROTOCOL.md).
fn evil(seq: u64, time: u64, fields: &str) -> Vec<u8> {
    format!(r#"{{"node":"evil","seq":{seq},"time":{time},{fields}}}"#).into_bytes()
}

fn say(room: &str, nick: &str, text: &str) -> String {
    format!(r#""kind":"message","room":"{room}","nick":"{nick}","text":"{text}","action":false"#)
}

/// `hmac-sha256:MAC:BODY`, the MAC made by openssl (an independent
/// implementation of the documented format).
fn openssl_sign(key: &str, body: &[u8]) -> Vec<u8> {
    let mut child = Command::new("sh")
        .args([
            "-c",
            "openssl dgst -sha256 -hmac \"$KEY\" -binary | openssl base64 -A",
        ])
        .env("KEY", key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let mac = String::from_utf8(out.stdout).unwrap();
    assert_eq!(mac.trim().len(), 44, "{mac}");
    let mut signed = format!("hmac-sha256:{}:", mac.trim()).into_bytes();
    signed.extend_from_slice(body);
    signed
}

/// Redis and two servers sharing `SECRET` through `--bus-secret-file`.
struct Signed {
    redis: Redis,
    one: ChatServer,
    two: ChatServer,
    _secret: tempfile::NamedTempFile,
}

impl Signed {
    fn start() -> Signed {
        let redis = Redis::start();
        let mut secret = tempfile::NamedTempFile::new().unwrap();
        writeln!(secret, "{SECRET}").unwrap();
        let path = secret.path().to_str().unwrap();
        let one = node(&redis.url(), &["--bus-secret-file", path]);
        let two = node(&redis.url(), &["--bus-secret-file", path]);
        Signed {
            redis,
            one,
            two,
            _secret: secret,
        }
    }

    fn stop(self) {
        assert!(self.one.stop().success());
        assert!(self.two.stop().success());
    }
}

fn assert_clean(client: &Client) {
    for line in &client.seen {
        assert!(
            !line.contains(['\u{1b}', '\u{7}', '\r', '\u{9b}']),
            "control characters reached the terminal: {line:?}"
        );
        assert!(
            !line.starts_with("*** Server notice"),
            "forged server line: {line:?}"
        );
    }
}

#[test]
fn forged_lines_from_the_bus_arrive_sanitized_or_not_at_all() {
    let redis = Redis::start();
    let server = node(&redis.url(), &[]);
    let mut alice = Client::join(&server.addr, "alice");
    wait_linked(&redis, 1);
    let t = now_ms();
    redis.publish_all(
        CHANNEL,
        &[
            // The review's attack: a forged server line, a new title, a
            // cleared screen.
            evil(1, t, &say("lobby", "eve", r"hi\r\n*** Server notice: you are banned\u001b]0;pwned\u0007\u001b[2J")),
            // Fields that break the nickname and room rules: dropped whole.
            evil(2, t, &say("lobby", r"eve\r\n*** root", "as root")),
            evil(3, t, r#""kind":"joined","room":"lobby","nick":"x\u001b[2Jy""#),
            evil(4, t, r#""kind":"joined","room":"lobby\r\n","nick":"mallet""#),
            evil(5, t, &say("lobby", &"n".repeat(33), "too long a name")),
            evil(6, t, r#""kind":"left","room":"lobby","nick":"eve","reason":"bye\r\n*** Server notice\u001b[2J""#),
            evil(7, t, &say("lobby", "eve", "marker")),
        ],
    );
    alice.expect("<eve> marker");
    assert_clean(&alice);
    for shown in [
        "<eve> hi*** Server notice: you are banned",
        "*** eve left #lobby (bye*** Server notice)",
    ] {
        assert!(
            alice.seen.iter().any(|l| l == shown),
            "{shown:?} missing: {:#?}",
            alice.seen
        );
    }
    for dropped in ["as root", "joined", "mallet", "too long a name"] {
        assert!(
            !alice.seen.iter().any(|l| l.contains(dropped)),
            "{dropped:?} should have been dropped: {:#?}",
            alice.seen
        );
    }
    // Oversized payloads are dropped before parsing.
    let huge = say("lobby", "eve", &"a".repeat(70 * 1024));
    redis.publish_all(
        CHANNEL,
        &[evil(8, t, &huge), evil(9, t, &say("lobby", "eve", "after"))],
    );
    alice.expect("<eve> after");
    assert!(!alice.seen.iter().any(|l| l.contains("aaaa")));
    assert!(server.stop().success());
}

#[test]
fn remote_rooms_cannot_push_local_rooms_out() {
    let redis = Redis::start();
    let server = node(&redis.url(), &[]);
    let mut alice = Client::join(&server.addr, "alice");
    alice.send("/join keep");
    alice.expect("*** In #keep");
    alice.send("remember me");
    alice.send("/join lobby");
    alice.expect("*** In #lobby");
    wait_linked(&redis, 1);
    // More rooms than the server keeps (1024), each with a message.
    let t = now_ms();
    let flood: Vec<Vec<u8>> = (0..1500)
        .map(|i| evil(i + 1, t, &say(&format!("flood{i}"), "eve", "spam")))
        .collect();
    redis.publish_all(CHANNEL, &flood);
    redis.publish_all(
        CHANNEL,
        &[evil(5000, t, &say("lobby", "eve", "flood over"))],
    );
    alice.expect("<eve> flood over");

    let mut bob = Client::join(&server.addr, "bob");
    bob.send("/join keep");
    bob.expect("*** In #keep");
    assert!(
        bob.seen.iter().any(|l| l == "<alice> remember me"),
        "the local room's history was pushed out: {:#?}",
        bob.seen
    );
    // Local rooms can still be made.
    bob.send("/join fresh");
    bob.expect("*** In #fresh (1): bob");
    assert!(server.stop().success());
}

/// Waits until every server rewrote its presence twice (so each has also
/// read everyone's presence at least once since now).
fn wait_two_heartbeats(redis: &Redis, ours: &[String]) {
    // A key's time to live only falls until the key is rewritten.
    let pttl = |key: &String| redis.cli(&["PTTL", key]).trim().parse::<i64>().unwrap();
    let mut last: Vec<i64> = ours.iter().map(pttl).collect();
    let mut rewrites = vec![0; ours.len()];
    let deadline = Instant::now() + WAIT;
    while rewrites.iter().any(|&n| n < 2) {
        for (i, key) in ours.iter().enumerate() {
            let now = pttl(key);
            if now > last[i] {
                rewrites[i] += 1;
            }
            last[i] = now;
        }
        assert!(
            Instant::now() < deadline,
            "presence not rewritten: {rewrites:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn forged_presence_keys_neither_break_the_link_nor_reserve_nicknames() {
    let redis = Redis::start();
    let one = node(&redis.url(), &[]);
    let two = node(&redis.url(), &[]);
    let mut alice = Client::join(&one.addr, "alice");
    let _bob = Client::join(&two.addr, "bob");
    wait_linked(&redis, 2);
    poll_who(&mut alice, "*** In #lobby (2): alice, bob", WAIT);
    let ours: Vec<String> = redis
        .cli(&["--scan", "--pattern", "socketkit:chat:presence:*"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(ours.len(), 2, "{ours:?}");

    // Keys that claim members: the old format (a hash), a bad nickname, and
    // a snapshot of another node than its key names.
    let prefix = "socketkit:chat:presence:";
    redis.cli(&["HSET", &format!("{prefix}evil2"), "mallory", "lobby"]);
    let bad_nick = r#"{"node":"evil3","seq":1,"time":0,"kind":"presence","members":[{"nick":"x\u001b[2J","room":"lobby"}]}"#;
    redis.cli(&["SET", &format!("{prefix}evil3"), bad_nick]);
    let other_node = r#"{"node":"someone","seq":1,"time":0,"kind":"presence","members":[{"nick":"trudy","room":"lobby"}]}"#;
    redis.cli(&["SET", &format!("{prefix}evil4"), other_node]);
    wait_two_heartbeats(&redis, &ours);
    alice.send("/who");
    assert_eq!(alice.expect("*** In #"), "*** In #lobby (2): alice, bob");

    // A key that is not presence at all is dropped, not a broken link.
    redis.cli(&["SET", &format!("{prefix}evil1"), "garbage"]);
    wait_two_heartbeats(&redis, &ours);
    alice.send("/who");
    assert_eq!(alice.expect("*** In #"), "*** In #lobby (2): alice, bob");
    assert!(
        !alice
            .seen
            .iter()
            .any(|l| l.contains("link to the other chat servers is down")),
        "a forged key broke the link: {:#?}",
        alice.seen
    );
    assert!(one.stop().success());
    assert!(two.stop().success());
}

#[test]
fn a_fake_join_lasts_no_longer_than_the_next_presence_read() {
    let redis = Redis::start();
    let server = node(&redis.url(), &[]);
    let mut alice = Client::join(&server.addr, "alice");
    wait_linked(&redis, 1);
    redis.publish_all(
        CHANNEL,
        &[evil(
            1,
            now_ms(),
            r#""kind":"joined","room":"lobby","nick":"mallory""#,
        )],
    );
    alice.expect("*** mallory joined #lobby");
    // No presence key backs the claim: the next read (every 3 s) forgets it.
    poll_who(
        &mut alice,
        "*** In #lobby (1): alice",
        Duration::from_secs(10),
    );
    let mut mallory = Client::connect(&server.addr);
    mallory.expect("Your nickname?");
    mallory.send("mallory");
    let welcome = mallory.expect("*** Welcome");
    assert!(welcome.starts_with("*** Welcome, mallory!"), "{welcome}");
    assert!(server.stop().success());
}

/// Asks `/who` until it answers `wanted`, within `limit`.
fn poll_who(client: &mut Client, wanted: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        client.send("/who");
        let answer = client.expect("*** In #");
        if answer == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {answer:?} after {limit:?}, wanted {wanted:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn with_a_secret_unsigned_forged_and_stale_messages_are_dropped() {
    let signed = Signed::start();
    let (redis, one, two) = (&signed.redis, &signed.one, &signed.two);
    let mut alice = Client::join(&one.addr, "alice");
    let mut bob = Client::join(&two.addr, "bob");
    wait_linked(redis, 2);
    alice.send("signed hello");
    bob.expect("<alice> signed hello");

    let t = now_ms();
    let forged_mac = {
        let mut payload = b"hmac-sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:".to_vec();
        payload.extend(evil(2, t, &say("lobby", "eve", "forged mac")));
        payload
    };
    redis.publish_all(
        CHANNEL,
        &[
            evil(1, t, &say("lobby", "eve", "unsigned")),
            forged_mac,
            openssl_sign(
                "the wrong secret!!",
                &evil(3, t, &say("lobby", "eve", "wrong key")),
            ),
            openssl_sign(SECRET, &evil(4, t - 60_000, &say("lobby", "eve", "stale"))),
            openssl_sign(SECRET, &evil(5, t, &say("lobby", "eve", "openssl signed"))),
        ],
    );
    bob.expect("<eve> openssl signed");
    alice.send("marker");
    bob.expect("<alice> marker");
    for dropped in ["unsigned", "forged mac", "wrong key", "stale"] {
        assert!(
            !bob.seen.iter().any(|l| l.contains(dropped)),
            "{dropped:?} got through: {:#?}",
            bob.seen
        );
    }
    signed.stop();
}

#[test]
fn a_replayed_signed_message_is_dropped() {
    let signed = Signed::start();
    let (redis, one, two) = (&signed.redis, &signed.one, &signed.two);
    let mut alice = Client::join(&one.addr, "alice");
    let mut bob = Client::join(&two.addr, "bob");
    // An eavesdropper on the channel records alice's line.
    let mut spy = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &redis.port.to_string(),
            "--raw",
            "SUBSCRIBE",
            CHANNEL,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run redis-cli");
    let mut heard = BufReader::new(spy.stdout.take().unwrap());
    wait_linked(redis, 3);
    alice.send("the secret plan");
    bob.expect("<alice> the secret plan");
    let recorded = loop {
        let mut line = String::new();
        assert!(
            heard.read_line(&mut line).unwrap() > 0,
            "the spy heard nothing"
        );
        if line.contains("the secret plan") {
            break line.trim_end_matches('\n').to_owned();
        }
    };
    signal(spy.id(), "KILL");
    let _ = spy.wait();
    assert!(recorded.starts_with("hmac-sha256:"), "{recorded}");

    redis.publish_all(CHANNEL, &[recorded.into_bytes()]);
    alice.send("marker");
    bob.expect("<alice> marker");
    let times = bob
        .seen
        .iter()
        .filter(|l| l.contains("the secret plan"))
        .count();
    assert_eq!(times, 1, "the replay was shown: {:#?}", bob.seen);
    signed.stop();
}

/// Two servers linked through `url` pass a line from one to the other.
fn two_nodes_talk(redis: &Redis, url: &str, extra: &[&str], text: &str) {
    let one = node(url, extra);
    let two = node(url, extra);
    let mut alice = Client::join(&one.addr, "alice");
    let mut bob = Client::join(&two.addr, "bob");
    wait_linked(redis, 2);
    alice.send(text);
    bob.expect(&format!("<alice> {text}"));
    assert!(one.stop().success());
    assert!(two.stop().success());
}

#[test]
fn the_bus_url_carries_a_redis_password() {
    let redis = Redis::start_with_password("hunter2-pw");
    let url = format!("redis://:hunter2-pw@127.0.0.1:{}", redis.port);
    two_nodes_talk(&redis, &url, &[], "through AUTH");
}

#[test]
fn rediss_links_through_tls_verified_against_the_bus_ca() {
    let dir = tempfile::tempdir().unwrap();
    let file = pki_init(dir.path());
    let redis = Redis::start_tls(
        &file("server.pem"),
        &file("server-key.pem"),
        &file("ca.pem"),
    );
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    two_nodes_talk(&redis, &url, &["--bus-ca", &file("ca.pem")], "over rediss");

    // Without --bus-ca the system roots do not know this CA: no link.
    let mut server = Command::new(env!("CARGO_BIN_EXE_socketkit"))
        .args(["serve", "chat", "127.0.0.1:0", "--bus", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start socketkit");
    let _stdout = server.stdout.take();
    let log = BufReader::new(server.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in log.lines().map_while(Result::ok) {
            if line.contains("cannot reach the chat bus") {
                let _ = tx.send(line);
            }
        }
    });
    let refused = rx
        .recv_timeout(WAIT)
        .expect("the server never said it cannot reach the bus");
    signal(server.id(), "TERM");
    crate::util::chat::wait_exit(&mut server);
    assert!(refused.contains("UnknownIssuer"), "{refused}");
}

#[test]
fn a_node_killed_right_after_a_join_loses_its_members_within_ten_seconds() {
    let redis = Redis::start();
    let survivor = node(&redis.url(), &[]);
    let doomed = node(&redis.url(), &[]);
    let mut alice = Client::join(&survivor.addr, "alice");
    wait_linked(&redis, 2);
    let _bob = Client::join(&doomed.addr, "bob");
    alice.expect("*** bob joined #lobby");
    signal(doomed.pid(), "KILL");
    let killed = Instant::now();
    assert!(!doomed.stop_after_signal().success());
    // The README's promise, with slack for a loaded machine.
    poll_who(
        &mut alice,
        "*** In #lobby (1): alice",
        Duration::from_secs(15),
    );
    eprintln!("bob was gone {:?} after the kill", killed.elapsed());
    let mut bob = Client::connect(&survivor.addr);
    bob.expect("Your nickname?");
    bob.send("bob");
    let welcome = bob.expect("*** Welcome");
    assert!(
        welcome.starts_with("*** Welcome, bob!"),
        "the nickname is still taken: {welcome}"
    );
    assert!(survivor.stop().success());
}
