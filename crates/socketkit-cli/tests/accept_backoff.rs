//! Running out of file descriptors: the server backs off, logs at most once
//! a second, and serves again once descriptors free up. Never a spin, never
//! an exit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn descriptor_exhaustion_backs_off_and_recovers() {
    let binary = env!("CARGO_BIN_EXE_socketkit");
    // 16 descriptors: stdio, the runtime's own, the listener, and a few
    // connections; the rest of our clients push accept() into EMFILE.
    let mut server = Command::new("sh")
        .args([
            "-c",
            &format!("ulimit -n 16 && exec '{binary}' serve echo 127.0.0.1:0"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start server");
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on tcp://")
        .expect("listening line")
        .to_owned();

    let (warnings_tx, warnings) = mpsc::channel();
    let stderr = BufReader::new(server.stderr.take().unwrap());
    let log_reader = std::thread::spawn(move || {
        let mut backoff_lines = 0;
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains("accept failed; backing off") {
                backoff_lines += 1;
                let _ = warnings_tx.send(Instant::now());
            }
        }
        backoff_lines
    });

    let clients: Vec<TcpStream> = (0..24)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let first_warning = warnings
        .recv_timeout(Duration::from_secs(10))
        .expect("the server reports descriptor exhaustion");
    drop(clients);

    // Descriptors come back as the server sees the closed clients; a new
    // client is then served. Each attempt is bounded; a few may land while
    // the server still works through the backlog of closed ones.
    let deadline = Instant::now() + Duration::from_secs(20);
    let served = loop {
        assert!(Instant::now() < deadline, "server did not recover");
        let mut client = TcpStream::connect(&addr).expect("listener still open");
        client
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        client.write_all(b"back").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        if client.read_to_end(&mut reply).is_ok() && reply == b"back" {
            break Instant::now();
        }
    };
    assert_eq!(server.try_wait().unwrap(), None, "server still running");
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
    let backoff_lines = log_reader.join().unwrap();
    let seconds = (served - first_warning).as_secs_f64();
    assert!(
        f64::from(backoff_lines) <= seconds + 2.0,
        "{backoff_lines} backoff log lines in {seconds:.1}s: more than one a second"
    );
}
