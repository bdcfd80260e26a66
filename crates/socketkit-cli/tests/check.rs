//! `socketkit check`: one verdict per target, text or JSON lines, exit 0
//! only when every target is open.

use crate::util::*;

/// Splits `STATUS TARGET LATENCYms[ (why)]`, checking the latency's form.
fn parse_line(line: &str) -> (String, String, Option<String>) {
    let mut parts = line.splitn(4, ' ');
    let status = parts.next().unwrap().to_owned();
    let target = parts.next().expect("no target").to_owned();
    let latency = parts.next().expect("no latency");
    let number = latency
        .strip_suffix("ms")
        .unwrap_or_else(|| panic!("latency without ms: {line:?}"));
    let ms: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("latency not a number: {line:?}"));
    assert!(ms >= 0.0, "{line:?}");
    let why = parts.next().map(|why| {
        assert!(
            why.starts_with('(') && why.ends_with(')'),
            "reason not in parentheses: {line:?}"
        );
        why[1..why.len() - 1].to_owned()
    });
    (status, target, why)
}

fn check(args: &[&str]) -> (i32, Vec<String>, String) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let out = run_socketkit(&all, b"");
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines = text(&out.stdout).lines().map(str::to_owned).collect();
    (
        out.status.code().expect("killed by a signal"),
        lines,
        stderr,
    )
}

#[test]
fn open_tcp_target_exits_zero() {
    let server = Server::start(&["serve", "discard", "127.0.0.1:0"], 1);
    let (code, lines, stderr) = check(&[server.addr()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, "");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (status, target, why) = parse_line(&lines[0]);
    assert_eq!(
        (status.as_str(), target.as_str(), why),
        ("open", server.addr(), None)
    );
}

#[test]
fn closed_port_exits_one() {
    let port = free_port();
    let target = format!("tcp://127.0.0.1:{port}");
    let (code, lines, stderr) = check(&[&target]);
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (status, shown, why) = parse_line(&lines[0]);
    assert_eq!(
        (status.as_str(), shown.as_str(), why),
        ("closed", target.as_str(), None)
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("socketkit: "), "{stderr}");
}

#[test]
fn unix_targets_open_and_closed() {
    let dir = tempdir();
    let live = format!("unix:{}", dir.path().join("live.sock").display());
    let missing = format!("unix:{}", dir.path().join("missing.sock").display());
    let _server = Server::start(&["serve", "echo", &live], 1);
    let (code, lines, _) = check(&[&live]);
    assert_eq!(code, 0);
    assert_eq!(parse_line(&lines[0]).0, "open");

    let (code, lines, _) = check(&[&live, &missing]);
    assert_eq!(code, 1);
    let verdicts: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            let (status, target, _) = parse_line(l);
            (status, target)
        })
        .collect();
    assert_eq!(
        verdicts,
        vec![("open".into(), live.clone()), ("closed".into(), missing)]
    );
}

#[test]
fn several_targets_keep_their_order() {
    let a = Server::start(&["serve", "echo", "127.0.0.1:0"], 1);
    let b = Server::start(&["serve", "echo", "[::1]:0"], 1);
    let closed = format!("tcp://127.0.0.1:{}", free_port());
    let (code, lines, _) = check(&[a.addr(), &closed, b.addr()]);
    assert_eq!(code, 1);
    let verdicts: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            let (status, target, _) = parse_line(l);
            (status, target)
        })
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("open".into(), a.addr().to_owned()),
            ("closed".into(), closed),
            ("open".into(), b.addr().to_owned()),
        ]
    );
    // All open: exit 0.
    let (code, lines, _) = check(&[a.addr(), b.addr()]);
    assert_eq!((code, lines.len()), (0, 2));
}

#[test]
fn datagram_and_unresolvable_targets_are_errors_with_a_reason() {
    let (code, lines, _) = check(&["udp://127.0.0.1:9", "no-such-host.invalid:80"]);
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (status, target, why) = parse_line(&lines[0]);
    assert_eq!(
        (status.as_str(), target.as_str()),
        ("error", "udp://127.0.0.1:9")
    );
    assert!(why.unwrap().contains("datagram"));
    let (status, target, why) = parse_line(&lines[1]);
    assert_eq!(
        (status.as_str(), target.as_str()),
        ("error", "tcp://no-such-host.invalid:80")
    );
    assert!(why.unwrap().contains("no-such-host.invalid"));
}

#[test]
fn an_unanswered_connect_is_a_timeout() {
    let (_listener, port) = full_backlog_listener();
    let target = format!("tcp://127.0.0.1:{port}");
    let (code, lines, _) = check(&["--timeout", "300ms", &target]);
    assert_eq!(code, 1);
    let (status, shown, why) = parse_line(&lines[0]);
    assert_eq!(
        (status.as_str(), shown.as_str(), why),
        ("timeout", target.as_str(), None)
    );
}

#[test]
fn json_lines_have_the_documented_keys() {
    let dir = tempdir();
    let unix = format!("unix:{}", dir.path().join("j.sock").display());
    let tcp = Server::start(&["serve", "echo", "127.0.0.1:0"], 1);
    let _unix_server = Server::start(&["serve", "echo", &unix], 1);
    let closed = format!("tcp://127.0.0.1:{}", free_port());
    let out = run_socketkit(
        &[
            "check",
            "--json",
            tcp.addr(),
            &closed,
            &unix,
            "udp://127.0.0.1:9",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    // Parsed by Python's json module: every line one object, exact key set.
    let code = r#"
for line in sys.stdin:
    o = json.loads(line)
    assert sorted(o) == ["address", "error", "latency_ms", "status", "target"], sorted(o)
    assert isinstance(o["latency_ms"], (int, float)) and o["latency_ms"] >= 0, o
    out("%s %s address=%s error=%s\n" % (
        o["status"], o["target"], o["address"],
        None if o["error"] is None else "yes"))
"#;
    let parsed = text(&python_ok(code, &[], &out.stdout));
    let port = tcp.port();
    assert_eq!(
        parsed,
        format!(
            "open {tcp} address=127.0.0.1:{port} error=None\n\
             closed {closed} address=None error=None\n\
             open {unix} address={unix} error=None\n\
             error udp://127.0.0.1:9 address=None error=yes\n",
            tcp = tcp.addr()
        )
    );
}

#[test]
fn json_all_open_exits_zero() {
    let server = Server::start(&["serve", "echo", "127.0.0.1:0"], 1);
    let out = run_socketkit(&["check", "--json", server.addr()], b"");
    assert_success("check --json", &out);
    let line = text(&out.stdout);
    assert!(line.starts_with('{') && line.ends_with("}\n"), "{line:?}");
    assert!(line.contains(r#""status":"open""#), "{line}");
    assert!(
        line.contains(&format!(r#""target":"{}""#, server.addr())),
        "{line}"
    );
}

#[test]
fn no_target_is_a_usage_error() {
    let out = run_socketkit(&["check"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out.stderr).contains("panicked"));
}

/// Three consecutive ports on HOST: BASE and BASE+2 listen (Python),
/// BASE+1 is bound but not listening, so it is closed for certain (no other
/// test can take it). Prints BASE once ready; stops when stdin closes.
const THREE_PORTS: &str = r#"
import random
host = sys.argv[1]
for _ in range(200):
    base = random.randint(20000, 60000)
    socks = []
    try:
        for offset in range(3):
            s = socket.socket()
            s.bind((host, base + offset))
            socks.append(s)
    except OSError:
        for s in socks:
            s.close()
        continue
    socks[0].listen(16)
    socks[2].listen(16)
    print(base, flush=True)
    sys.stdin.read()
    sys.exit(0)
sys.exit("no three consecutive free ports")
"#;

fn three_ports() -> (Proc, u16) {
    three_ports_on("127.0.0.1")
}

fn three_ports_on(host: &str) -> (Proc, u16) {
    let (proc, line) = spawn_python_server(THREE_PORTS, &[host]);
    (proc, line.trim().parse().unwrap())
}

fn verdicts(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .map(|l| {
            let (status, target, _) = parse_line(l);
            (status, target)
        })
        .collect()
}

fn target(port: u16) -> String {
    format!("tcp://127.0.0.1:{port}")
}

#[test]
fn port_ranges_and_lists_expand_in_order() {
    let (_ports, base) = three_ports();
    let (open_a, closed, open_b) = (base, base + 1, base + 2);
    let range = format!("127.0.0.1:{open_a}-{open_b}");
    let (code, lines, stderr) = check(&[&range]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        verdicts(&lines),
        vec![
            ("open".into(), target(open_a)),
            ("closed".into(), target(closed)),
            ("open".into(), target(open_b)),
        ]
    );
    assert!(stderr.contains("1 of 3 targets not open"), "{stderr}");

    // A list, a range in a list, repeats checked once.
    let list = format!("127.0.0.1:{open_b},{open_a}-{open_a},{open_b}");
    let (code, lines, _) = check(&[&list]);
    assert_eq!(code, 0, "every target open");
    assert_eq!(
        verdicts(&lines),
        vec![
            ("open".into(), target(open_b)),
            ("open".into(), target(open_a))
        ]
    );
}

#[test]
fn open_shows_only_open_targets_and_keeps_the_exit_status() {
    let (_ports, base) = three_ports();
    let range = format!("127.0.0.1:{base}-{}", base + 2);
    let (code, lines, _) = check(&["--open", &range]);
    assert_eq!(code, 1, "a closed port still fails the check");
    assert_eq!(
        verdicts(&lines),
        vec![
            ("open".into(), target(base)),
            ("open".into(), target(base + 2))
        ]
    );
    let (code, lines, _) = check(&["--open", "--json", &range]);
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let code_py =
        "for line in sys.stdin:\n    d = json.loads(line)\n    print(d['status'], d['target'])";
    let parsed = text(&python_ok(code_py, &[], lines.join("\n").as_bytes()));
    assert_eq!(
        parsed,
        format!("open {}\nopen {}\n", target(base), target(base + 2))
    );
}

#[test]
fn bad_port_ranges_are_one_line_usage_errors() {
    for (arg, why) in [
        ("127.0.0.1:0", "port 0"),
        ("127.0.0.1:5-3", "runs backwards"),
        ("127.0.0.1:70000", "out of range"),
        ("127.0.0.1:1-", "'1-' is not a port or a range"),
        ("127.0.0.1:22,", "not a port or a range"),
    ] {
        let out = run_socketkit(&["check", arg], b"");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{arg}: {stderr}");
        assert!(out.stdout.is_empty(), "{arg}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{arg}: {stderr}");
        assert!(errors[0].contains(why), "{arg}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// The whole port range, on 127.0.0.2 so the probes stay off the servers
/// other tests (and other suites on this machine) run on 127.0.0.1, some of
/// which serve a single connection.
#[test]
fn a_full_loopback_scan_finishes_and_finds_the_listeners() {
    let (_ports, base) = three_ports_on("127.0.0.2");
    let at = |port: u16| format!("tcp://127.0.0.2:{port}");
    let started = std::time::Instant::now();
    let (code, lines, stderr) = check(&["--open", "127.0.0.2:1-65535"]);
    let took = started.elapsed();
    assert_eq!(code, 1, "{stderr}");
    let open: Vec<String> = verdicts(&lines)
        .into_iter()
        .map(|(status, target)| {
            assert_eq!(status, "open");
            target
        })
        .collect();
    assert!(open.contains(&at(base)), "{open:?}");
    assert!(open.contains(&at(base + 2)), "{open:?}");
    assert!(!open.contains(&at(base + 1)), "{open:?}");
    assert!(stderr.contains("of 65535 targets not open"), "{stderr}");
    eprintln!("scan of 65535 ports took {took:?}");
}

#[test]
fn family_flags_pick_the_addresses_tried() {
    let (_ports, base) = three_ports();
    // `:PORT` means ::1 and 127.0.0.1; the listener is on 127.0.0.1 only.
    let any = format!(":{base}");
    let (code, lines, _) = check(&["-4", &any]);
    assert_eq!((code, parse_line(&lines[0]).0.as_str()), (0, "open"));
    let (code, lines, _) = check(&["-6", &any]);
    assert_eq!((code, parse_line(&lines[0]).0.as_str()), (1, "closed"));
    let v4 = target(base);
    let (code, lines, _) = check(&["-6", &v4]);
    assert_eq!(code, 1);
    let (status, _, why) = parse_line(&lines[0]);
    assert_eq!(status, "error");
    assert!(why.unwrap().contains("no IPv6 address"), "{lines:?}");
}
