//! Chat servers linked through a real `redis-server`: rooms, messages,
//! private messages, presence and `/who` across three nodes, per-sender
//! order, no echo of a node's own events, and a Redis restart in the middle.

use std::time::{Duration, Instant};

use crate::util::chat::{ChatServer, Client, Redis, WAIT};

fn node(redis: &Redis) -> ChatServer {
    ChatServer::start(&["--rate", "0", "--bus", &redis.url()])
}

/// Asks `command` until its answer (a line starting with `prefix`) is
/// `wanted`: presence travels through Redis, so it shows up a little later.
fn poll(client: &mut Client, command: &str, prefix: &str, wanted: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        client.send(command);
        if client.expect(prefix) == wanted {
            return;
        }
        assert!(Instant::now() < deadline, "never got {wanted:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads until `count` numbered lines from each of `senders` arrived, in
/// order; a line from `me` would be an echo of our own.
fn hear_in_order(client: &mut Client, me: &str, senders: &[&str], count: u32) {
    let mut next = vec![0; senders.len()];
    while next.iter().any(|n| *n < count) {
        let line = client.line().expect("connected");
        assert!(
            !line.starts_with(&format!("<{me}>")),
            "own line echoed: {line}"
        );
        for (i, sender) in senders.iter().enumerate() {
            if let Some(seq) = line.strip_prefix(&format!("<{sender}> n ")) {
                assert_eq!(
                    seq.parse::<u32>().unwrap(),
                    next[i],
                    "{sender} out of order"
                );
                next[i] += 1;
            }
        }
    }
}

#[test]
fn three_nodes_share_rooms_messages_private_messages_and_presence() {
    let redis = Redis::start();
    let nodes: Vec<ChatServer> = (0..3).map(|_| node(&redis)).collect();
    let mut alice = Client::join(&nodes[0].addr, "alice");
    let mut bob = Client::join(&nodes[1].addr, "bob");
    let mut carol = Client::join(&nodes[2].addr, "carol");
    let everyone = "*** In #lobby (3): alice, bob, carol";
    for client in [&mut alice, &mut bob, &mut carol] {
        poll(client, "/who", "*** In #lobby", everyone);
    }

    for i in 0..200 {
        alice.send(&format!("n {i}"));
        bob.send(&format!("n {i}"));
    }
    hear_in_order(&mut carol, "carol", &["alice", "bob"], 200);
    hear_in_order(&mut alice, "alice", &["bob"], 200);
    hear_in_order(&mut bob, "bob", &["alice"], 200);

    alice.send("/msg Carol psst, from node one");
    assert_eq!(alice.expect("psst"), "-> *carol* psst, from node one");
    assert_eq!(carol.expect("psst"), "*alice* psst, from node one");

    let mut taken = Client::join(&nodes[2].addr, "alice");
    taken.expect("error: the nickname alice is taken");
    drop(taken);
    let mut dave = Client::join(&nodes[1].addr, "dave");
    alice.expect("*** dave joined #lobby");
    dave.send("/quit");
    alice.expect("*** dave left #lobby");

    bob.send("/nick robert");
    carol.expect("*** bob is now known as robert");
    bob.send("/join rust");
    carol.expect("*** robert left #lobby");
    poll(
        &mut alice,
        "/rooms",
        "*** Rooms",
        "*** Rooms: #lobby (2), #rust (1)",
    );
    carol.send("/join rust");
    carol.expect("*** In #rust (2): carol, robert");
    assert_eq!(bob.expect("carol joined"), "*** carol joined #rust");

    for node in nodes {
        assert!(node.stop().success());
    }
}

#[test]
fn local_rooms_survive_a_redis_restart_and_the_link_comes_back() {
    let redis = Redis::start();
    let nodes: Vec<ChatServer> = (0..3).map(|_| node(&redis)).collect();
    let mut alice = Client::join(&nodes[0].addr, "alice");
    let mut amy = Client::join(&nodes[0].addr, "amy");
    let mut bob = Client::join(&nodes[1].addr, "bob");
    let mut carol = Client::join(&nodes[2].addr, "carol");
    let everyone = "*** In #lobby (4): alice, amy, bob, carol";
    poll(&mut bob, "/who", "*** In #lobby", everyone);
    poll(&mut carol, "/who", "*** In #lobby", everyone);
    alice.send("before the restart");
    bob.expect("<alice> before the restart");
    carol.expect("<alice> before the restart");

    let port = redis.kill();
    for client in [&mut alice, &mut amy, &mut bob, &mut carol] {
        client.expect(
            "*** The link to the other chat servers is down; this server's rooms keep working",
        );
    }
    alice.send("while redis is away");
    amy.expect("<alice> while redis is away");
    bob.send("/who");
    bob.expect("*** In #lobby (1): bob");

    let _redis = Redis::restart_on(port);
    for client in [&mut alice, &mut amy, &mut bob, &mut carol] {
        client.expect("*** The link to the other chat servers is back");
    }
    alice.send("after the restart");
    bob.expect("<alice> after the restart");
    carol.expect("<alice> after the restart");
    bob.send("back at you");
    alice.expect("<bob> back at you");
    carol.expect("<bob> back at you");
    poll(&mut carol, "/who", "*** In #lobby", everyone);

    for node in nodes {
        assert!(node.stop().success());
    }
}
