//! Shared by the chat tests: run `socketkit serve chat` on a free loopback
//! port, and talk to it like `nc` does (lines over a plain TCP socket).
//! Every wait is bounded; a failed wait panics with what was seen.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long any one expected thing may take on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running chat server; killed on drop if the test did not stop it.
pub struct ChatServer {
    child: Child,
    /// `127.0.0.1:PORT` of the chat socket.
    pub addr: String,
    /// `http://127.0.0.1:PORT/` of the web page, with `--web`.
    pub web: Option<String>,
}

impl ChatServer {
    /// `socketkit serve chat ADDR ARGS...`, waiting for its listening lines.
    pub fn start_at(addr: &str, args: &[&str]) -> ChatServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_socketkit"))
            .args(["serve", "chat", addr])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start socketkit");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let wants_web = args.contains(&"--web");
        let (mut tcp, mut web) = (None, None);
        while tcp.is_none() || (wants_web && web.is_none()) {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "server exited before listening"
            );
            let address = line
                .trim()
                .strip_prefix("listening on ")
                .unwrap()
                .to_owned();
            match address.strip_prefix("tcp://") {
                Some(tcp_addr) => tcp = Some(tcp_addr.to_owned()),
                None => web = Some(address),
            }
        }
        ChatServer {
            child,
            addr: tcp.unwrap(),
            web,
        }
    }

    /// On a free port.
    pub fn start(args: &[&str]) -> ChatServer {
        ChatServer::start_at("127.0.0.1:0", args)
    }

    /// The server's PID, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for an exit a signal already started.
    pub fn stop_after_signal(mut self) -> ExitStatus {
        wait_exit(&mut self.child)
    }

    /// SIGTERM, then wait (bounded) for the exit.
    pub fn stop(mut self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        wait_exit(&mut self.child)
    }
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One `nc`-style client: lines out, lines in.
pub struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    /// Every line read so far, for failure messages.
    pub seen: Vec<String>,
}

impl Client {
    /// Connects and answers the nickname prompt with `nick`; returns once
    /// the welcome arrived. The welcome names the nickname given.
    pub fn join(addr: &str, nick: &str) -> Client {
        let mut client = Client::connect(addr);
        client.expect("Your nickname?");
        client.send(nick);
        client.expect("*** Welcome, ");
        client
    }

    /// Connects without answering the prompt.
    pub fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to chat");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
            seen: Vec::new(),
        }
    }

    /// Sends one line (LF added).
    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    /// Sends raw bytes.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// The next line (CRLF stripped), `None` at end of stream; panics after
    /// [`WAIT`].
    pub fn line(&mut self) -> Option<String> {
        let deadline = Instant::now() + WAIT;
        let mut bytes = Vec::new();
        loop {
            match self.reader.read_until(b'\n', &mut bytes) {
                Ok(0) => return None,
                Ok(_) if bytes.ends_with(b"\n") => break,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read failed: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "no complete line within {WAIT:?}; partial {:?}; seen before: {:#?}",
                String::from_utf8_lossy(&bytes),
                self.last_seen()
            );
        }
        let line = String::from_utf8(bytes).expect("server sends UTF-8");
        let line = line
            .trim_end_matches('\n')
            .trim_end_matches('\r')
            .to_owned();
        self.seen.push(line.clone());
        Some(line)
    }

    /// Reads until a line contains `needle`; returns that line.
    pub fn expect(&mut self, needle: &str) -> String {
        loop {
            match self.line() {
                Some(line) if line.contains(needle) => return line,
                Some(_) => {}
                None => panic!(
                    "connection closed while waiting for {needle:?}; seen: {:#?}",
                    self.last_seen()
                ),
            }
        }
    }

    /// Reads until the server closes the connection.
    pub fn expect_closed(&mut self) {
        while self.line().is_some() {}
    }

    fn last_seen(&self) -> &[String] {
        &self.seen[self.seen.len().saturating_sub(30)..]
    }

    /// A second handle on the socket, to write from another thread.
    pub fn stream_clone(&self) -> TcpStream {
        self.writer.try_clone().unwrap()
    }
}

/// A throwaway `redis-server` on a free loopback port, no persistence.
pub struct Redis {
    child: Child,
    /// The port it listens on (kept across restarts).
    pub port: u16,
    /// What `redis-cli` needs besides the port (password, TLS).
    cli: Vec<String>,
}

/// `socketkit pki init DIR/pki`: a CA (`ca.pem`) and a server certificate
/// (`server.pem`, `server-key.pem`) for 127.0.0.1; returns a path maker.
pub fn pki_init(dir: &std::path::Path) -> impl Fn(&str) -> String {
    let pki = dir.join("pki");
    let status = Command::new(env!("CARGO_BIN_EXE_socketkit"))
        .args(["pki", "init", pki.to_str().unwrap()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    move |name: &str| pki.join(name).to_str().unwrap().to_owned()
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_on(free_port())
    }

    fn start_on(port: u16) -> Redis {
        Redis::spawn(&["--port", &port.to_string()], port, Vec::new(), true)
    }

    /// With `--requirepass PASSWORD`.
    pub fn start_with_password(password: &str) -> Redis {
        let port = free_port();
        let args = ["--port", &port.to_string(), "--requirepass", password];
        Redis::spawn(
            &args,
            port,
            vec!["-a".into(), password.into(), "--no-auth-warning".into()],
            true,
        )
    }

    /// TLS only, with the certificate and key given (from `socketkit pki
    /// init`); clients are not asked for certificates.
    pub fn start_tls(cert: &str, key: &str, ca: &str) -> Redis {
        let port = free_port();
        let args = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            cert,
            "--tls-key-file",
            key,
            "--tls-ca-cert-file",
            ca,
            "--tls-auth-clients",
            "no",
        ];
        let cli = vec!["--tls".into(), "--cacert".into(), ca.into()];
        Redis::spawn(&args, port, cli, false)
    }

    fn spawn(args: &[&str], port: u16, cli: Vec<String>, plain: bool) -> Redis {
        let child = Command::new("redis-server")
            .args(args)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("run redis-server (.ci/run installs it)");
        let redis = Redis { child, port, cli };
        redis.wait_ready(plain);
        redis
    }

    /// Until it answers a PING (any answer: it may want a password), or for
    /// TLS until it accepts connections.
    fn wait_ready(&self, plain: bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                if !plain {
                    return;
                }
                stream
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                let mut reply = String::new();
                if stream.write_all(b"PING\r\n").is_ok()
                    && BufReader::new(stream).read_line(&mut reply).is_ok()
                    && !reply.is_empty()
                {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis-cli -p PORT ARGS...`: its standard output (panics if it fails).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.cli)
            .args(args)
            .output()
            .expect("run redis-cli");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `PUBLISH CHANNEL PAYLOAD` for each payload, through `redis-cli
    /// --pipe` (raw protocol, so payloads may hold any byte).
    pub fn publish_all(&self, channel: &str, payloads: &[Vec<u8>]) {
        let mut resp = Vec::new();
        for payload in payloads {
            resp.extend_from_slice(b"*3\r\n$7\r\nPUBLISH\r\n");
            for arg in [channel.as_bytes(), payload] {
                resp.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                resp.extend_from_slice(arg);
                resp.extend_from_slice(b"\r\n");
            }
        }
        let mut child = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.cli)
            .arg("--pipe")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run redis-cli");
        child.stdin.take().unwrap().write_all(&resp).unwrap();
        let out = child.wait_with_output().unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && report.contains("errors: 0"),
            "redis-cli --pipe: {report}"
        );
    }

    /// Kills Redis (no goodbye to its clients) and waits for it to go.
    pub fn kill(mut self) -> u16 {
        signal(self.child.id(), "KILL");
        wait_exit(&mut self.child);
        self.port
    }

    /// A new Redis on a port a killed one used.
    pub fn restart_on(port: u16) -> Redis {
        Redis::start_on(port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
