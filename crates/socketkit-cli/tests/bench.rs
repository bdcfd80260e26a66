//! `socketkit bench` against our echo and against independent ones (Python
//! socketserver, one per transport), a corrupting server it must catch, and
//! its JSON and usage errors. Runs are short and bounded; nothing here
//! asserts a speed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// A server process, stopped (by its PID) when dropped.
struct Server {
    child: Child,
    endpoints: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `program args…` and reads `lines` `listening on ADDR` lines.
    fn start(program: &str, args: &[&str], lines: usize, dir: tempfile::TempDir) -> Server {
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut endpoints = Vec::new();
        for _ in 0..lines {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            let endpoint = line
                .trim()
                .strip_prefix("listening on ")
                .unwrap_or_else(|| {
                    panic!("{program} printed {line:?} instead of a listening line")
                });
            endpoints.push(endpoint.to_owned());
        }
        Server {
            child,
            endpoints,
            _dir: dir,
        }
    }

    /// `socketkit serve echo` on TCP, UDP and a Unix stream socket.
    fn socketkit_echo() -> Server {
        Server::socketkit_echo_with(&[])
    }

    /// The same, with extra `serve` flags.
    fn socketkit_echo_with(flags: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let unix = format!("unix:{}", dir.path().join("echo.sock").display());
        let mut args = vec![
            "serve",
            "echo",
            "tcp://127.0.0.1:0",
            "udp://127.0.0.1:0",
            &unix,
        ];
        args.extend_from_slice(flags);
        Server::start(env!("CARGO_BIN_EXE_socketkit"), &args, 3, dir)
    }

    /// Python's socketserver echoing on `transport` (tcp, udp, unix), or,
    /// with `corrupt`, flipping one bit of every reply.
    fn python(transport: &str, corrupt: bool) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("py.sock");
        let args = [
            "-c",
            PYTHON_ECHO,
            transport,
            path.to_str().unwrap(),
            if corrupt { "corrupt" } else { "echo" },
        ];
        Server::start("python3", &args, 1, dir)
    }

    fn endpoint(&self, scheme: &str) -> &str {
        self.endpoints
            .iter()
            .find(|e| e.starts_with(scheme))
            .unwrap_or_else(|| panic!("no {scheme} endpoint in {:?}", self.endpoints))
    }
}

/// The textbook servers: ThreadingTCPServer, UDPServer and
/// ThreadingUnixStreamServer with a recv/sendall loop.
const PYTHON_ECHO: &str = r#"
import socketserver, sys
transport, path, behaviour = sys.argv[1:4]
def answer(data):
    if behaviour == "corrupt" and data:
        data = bytearray(data)
        data[len(data) // 2] ^= 0x01
    return bytes(data)
class Stream(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(answer(data))
class Datagram(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(answer(data), self.client_address)
if transport == "tcp":
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Stream)
    where = "tcp://127.0.0.1:%d" % server.server_address[1]
elif transport == "udp":
    server = socketserver.UDPServer(("127.0.0.1", 0), Datagram)
    where = "udp://127.0.0.1:%d" % server.server_address[1]
else:
    server = socketserver.ThreadingUnixStreamServer(path, Stream)
    where = "unix:" + path
server.daemon_threads = True
print("listening on " + where, flush=True)
server.serve_forever()
"#;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_socketkit"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run socketkit bench")
}

/// Runs a JSON bench that must succeed (half a second unless `args` say
/// otherwise), and returns its report.
fn bench_ok(args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    if !args.contains(&"-d") {
        all.extend(["-d", "0.5"]);
    }
    all.extend_from_slice(args);
    let output = bench(&all);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench {args:?} failed: {stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).expect("valid JSON")
}

fn number(report: &Value, field: &str) -> f64 {
    report[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing in {report}"))
}

/// Everything sent came back verified, on every connection.
fn assert_clean(report: &Value, conns: f64) {
    assert_eq!(number(report, "mismatches"), 0.0, "{report}");
    assert_eq!(number(report, "errors"), 0.0, "{report}");
    assert_eq!(number(report, "served"), conns, "{report}");
    assert!(number(report, "msgs") > 0.0, "{report}");
    assert!(number(report, "bytes") >= number(report, "msgs") * number(report, "size"));
}

#[test]
fn json_report_has_every_field() {
    let server = Server::socketkit_echo();
    let report = bench_ok(&[server.endpoint("tcp://"), "--conns", "3", "--size", "100"]);
    for field in [
        "target",
        "mode",
        "conns",
        "connected",
        "served",
        "size",
        "pipeline",
        "secs",
        "connect_ms",
        "msgs",
        "msgs_per_s",
        "bytes",
        "mbytes_per_s",
        "p50_us",
        "p99_us",
        "p999_us",
        "max_us",
        "errors",
        "mismatches",
        "late",
        "stalled",
    ] {
        assert!(report.get(field).is_some(), "{field} missing in {report}");
    }
    assert_eq!(report["target"], server.endpoint("tcp://"));
    assert_eq!(report["mode"], "ping-pong");
    assert_eq!(number(&report, "size"), 100.0);
    assert_eq!(number(&report, "connected"), 3.0);
    assert!(number(&report, "p50_us") > 0.0);
    assert!(number(&report, "p50_us") <= number(&report, "p99_us"));
    assert!(number(&report, "p99_us") <= number(&report, "max_us"));
    assert_clean(&report, 3.0);
}

#[test]
fn loads_our_echo_over_tcp_udp_and_unix() {
    let server = Server::socketkit_echo();
    for scheme in ["tcp://", "udp://", "unix:"] {
        let report = bench_ok(&[server.endpoint(scheme), "--conns", "4"]);
        assert_clean(&report, 4.0);
    }
    let pipelined = bench_ok(&[
        server.endpoint("tcp://"),
        "-c",
        "2",
        "-P",
        "8",
        "-s",
        "4KiB",
    ]);
    assert_clean(&pipelined, 2.0);
    assert_eq!(number(&pipelined, "msgs") % 8.0, 0.0);
}

#[test]
fn one_event_loop_and_thread_per_connection_serve_every_connection() {
    for flags in [&["--threads", "1"][..], &["--mode", "threads"]] {
        let server = Server::socketkit_echo_with(flags);
        for scheme in ["tcp://", "udp://", "unix:"] {
            let report = bench_ok(&[server.endpoint(scheme), "--conns", "20"]);
            assert_clean(&report, 20.0);
        }
    }
}

#[test]
fn bulk_and_churn_against_our_echo() {
    let server = Server::socketkit_echo();
    let tcp = server.endpoint("tcp://");
    let bulk = bench_ok(&[tcp, "--mode", "bulk", "--bytes", "8MiB", "-c", "2"]);
    assert_eq!(bulk["mode"], "bulk");
    assert_eq!(number(&bulk, "errors"), 0.0, "{bulk}");
    assert_eq!(number(&bulk, "mismatches"), 0.0, "{bulk}");
    assert_eq!(
        number(&bulk, "bytes"),
        2.0 * 8.0 * 1024.0 * 1024.0,
        "{bulk}"
    );

    let churn = bench_ok(&[server.endpoint("unix:"), "--mode", "churn", "-c", "2"]);
    assert_eq!(churn["mode"], "churn");
    assert_clean(&churn, 2.0);
}

#[test]
fn count_stops_each_connection() {
    let server = Server::socketkit_echo();
    let report = bench_ok(&[
        server.endpoint("tcp://"),
        "-c",
        "3",
        "-n",
        "50",
        "-d",
        "30s",
    ]);
    assert_eq!(number(&report, "msgs"), 150.0, "{report}");
    assert!(number(&report, "secs") < 30.0);
}

#[test]
fn loads_independent_python_echo_servers() {
    for transport in ["tcp", "udp", "unix"] {
        let server = Server::python(transport, false);
        let report = bench_ok(&[&server.endpoints[0], "--conns", "2"]);
        assert_clean(&report, 2.0);
    }
}

#[test]
fn a_corrupting_server_is_caught() {
    for transport in ["tcp", "udp"] {
        let server = Server::python(transport, true);
        let output = bench(&["--json", "-d", "0.5", &server.endpoints[0]]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "corruption must fail the run"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("differed from what was sent"), "{stderr}");
        let report: Value = serde_json::from_slice(&output.stdout).expect("report still printed");
        assert!(number(&report, "mismatches") >= 1.0, "{report}");
        assert_eq!(number(&report, "msgs"), 0.0, "{report}");
    }
}

#[test]
fn bad_requests_are_clear_errors() {
    let server = Server::socketkit_echo();
    let output = bench(&[server.endpoint("udp://"), "--mode", "bulk"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bulk needs a stream"), "{stderr}");

    let output = bench(&[server.endpoint("tcp://"), "--size", "0"]);
    assert_eq!(output.status.code(), Some(2), "usage error");

    let output = bench(&["127.0.0.1:1", "-d", "0.5"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nothing is listening"), "{stderr}");
}
