//! `socketkit check`: one verdict per target, text or JSON lines, exit 0
//! only when every target is open.

mod util;

use util::*;

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
