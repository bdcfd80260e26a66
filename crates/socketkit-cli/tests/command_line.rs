//! The command line's own shape: per-service flags (another service's flag
//! is a usage error naming its service), shell completions driven through
//! bash's completion protocol, man pages read by man(1), the broken-pipe
//! rule (a closed stdout is success, a peer's EPIPE is an error) and
//! `serve --metrics` scraped with curl.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use crate::util::{
    assert_one_error_line, assert_success, bin, py_roundtrip, python_cmd, run, run_socketkit,
    spawn_python_server, text, wait_until, Proc, Server,
};

/// Each service takes its own flags; one of another service's is exit 2
/// with a tip naming the service(s) it belongs to.
#[test]
fn another_services_flag_is_a_usage_error_naming_its_service() {
    for (args, tip) in [
        (
            &["serve", "echo", "--allow-shell"][..],
            "--allow-shell belongs to `serve exec`, `serve cmd`, not `serve echo`",
        ),
        (
            &["serve", "echo", "--history", "5"],
            "--history belongs to `serve chat`",
        ),
        (
            &["serve", "chat", "127.0.0.1:0", "-x"],
            "-x belongs to `serve forward`",
        ),
        (
            &["serve", "upper", "--token-file=/dev/null"],
            "--token-file belongs to `serve exec`, `serve recv`",
        ),
    ] {
        let out = run_socketkit(args, b"");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(tip), "{args:?}: {stderr}");
    }
    // A flag of the service itself, and a common one, parse: --help shows
    // them on the service's page.
    let out = run_socketkit(&["serve", "chat", "--help"], b"");
    assert_success("serve chat --help", &out);
    for flag in ["--history", "--max-conns", "--metrics", "--allow", "--cert"] {
        assert!(text(&out.stdout).contains(flag), "{flag} missing");
    }
    assert!(!text(&out.stdout).contains("--allow-shell"));
}

/// While the service was a positional argument, flags could come before
/// it; scripts written so still run.
#[test]
fn flags_before_the_service_still_parse() {
    let mut server = Server::start(&["serve", "--once", "-q", "upper", "127.0.0.1:0"], 1);
    assert_eq!(
        py_roundtrip(server.addr(), b"compatible\n"),
        b"COMPATIBLE\n"
    );
    assert_eq!(server.exit_code(), 0, "{}", server.stderr());
}

/// `serve --help` lists every service with one line.
#[test]
fn serve_help_lists_the_services() {
    let out = run_socketkit(&["serve", "--help"], b"");
    assert_success("serve --help", &out);
    let help = text(&out.stdout);
    for service in [
        "echo", "upper", "hello", "discard", "daytime", "exec", "recv", "chat", "cmd", "forward",
    ] {
        assert!(
            help.lines()
                .any(|line| line.trim_start().starts_with(&format!("{service} "))),
            "{service} not listed:\n{help}"
        );
    }
}

/// What bash's completion function offers for `WORDS...` (the last word
/// being completed), driven as bash's `complete -F` would.
fn bash_complete(script: &std::path::Path, words: &[&str]) -> BTreeSet<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        r#"source '{script}' || exit 9
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
complete -p socketkit >/dev/null || exit 8
_socketkit socketkit "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        script = script.display(),
        words = quoted.join(" "),
        cword = words.len() - 1,
    );
    let out = run(
        {
            let mut cmd = Command::new("bash");
            cmd.arg("--norc").arg("-c").arg(program);
            cmd
        },
        b"",
    );
    assert_success("bash completion", &out);
    text(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completion_completes_subcommands_and_services() {
    let dir = crate::util::tempdir();
    let out = run_socketkit(&["completions", "bash"], b"");
    assert_success("completions bash", &out);
    let script = dir.path().join("socketkit.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let set = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect();
    assert_eq!(
        bash_complete(&script, &["socketkit", "se"]),
        set(&["send", "serve"])
    );
    assert_eq!(
        bash_complete(&script, &["socketkit", "serve", "c"]),
        set(&["chat", "cmd"])
    );
    // Another shell's script names the command too.
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = run_socketkit(&["completions", shell], b"");
        assert_success(shell, &out);
        assert!(text(&out.stdout).contains("serve"), "{shell}");
    }
}

/// `man DIR` writes one page per subcommand, services included, and man(1)
/// renders each without a warning.
#[test]
fn man_pages_are_written_per_subcommand_and_render() {
    let dir = crate::util::tempdir();
    let out = run_socketkit(&["man", &dir.path().display().to_string()], b"");
    assert_success("man", &out);
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for page in [
        "socketkit.1",
        "socketkit-serve.1",
        "socketkit-serve-echo.1",
        "socketkit-serve-chat.1",
        "socketkit-serve-forward.1",
        "socketkit-connect.1",
        "socketkit-pki-init.1",
        "socketkit-completions.1",
    ] {
        assert!(pages.iter().any(|p| p == page), "{page} not in {pages:?}");
    }
    for page in &pages {
        let roff = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(
            roff.contains("\n.TH ") || roff.starts_with(".TH "),
            "{page}"
        );
    }
    // man -l renders the page through groff; -w warnings go to stderr.
    let mut man = Command::new("man");
    man.args(["-l", "-P", "cat", "--warnings"])
        .arg(dir.path().join("socketkit-serve-chat.1"))
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8");
    let out = run(man, b"");
    assert_success("man -l", &out);
    let page = text(&out.stdout);
    assert!(page.contains("socketkit-serve-chat"), "{page}");
    assert!(page.contains("--history"), "{page}");
    assert!(page.contains("--max-conns"), "{page}");
    assert_eq!(text(&out.stderr), "", "groff warnings");
}

/// A peer that sends without end, for a reader that stops early.
const FLOOD: &str = r#"
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(4)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
try:
    while True:
        conn.sendall(b"x" * 65536)
except OSError:
    pass
"#;

/// `socketkit connect … | head -c1`: head has what it wanted and closes the
/// pipe; that is success (0) and nothing on stderr.
#[test]
fn a_closed_stdout_is_success() {
    let (mut peer, port) = spawn_python_server(FLOOD, &[]);
    let script = format!(
        "'{}' connect tcp://127.0.0.1:{port} </dev/null | head -c1 >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
        bin()
    );
    let mut bash = Command::new("bash");
    bash.arg("-c").arg(script).env_remove("RUST_LOG");
    let out = run(bash, b"");
    assert_success("the pipeline", &out);
    assert_eq!(text(&out.stdout).trim(), "0", "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    peer.close_stdin();
}

/// A peer that closes while `send` writes is the error it is (EPIPE on
/// the socket): exit 1 with one line, never the silent success a closed
/// stdout gets.
#[test]
fn a_peers_broken_pipe_is_an_error() {
    let dir = crate::util::tempdir();
    let socket = dir.path().join("recv.sock").display().to_string();
    // tests/peers/vanishing_receiver.py: takes the offer, reads 64 KiB, closes.
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/vanishing_receiver.py"
    );
    let mut python = Command::new("python3");
    python.arg(script).arg(&socket);
    let mut peer = Proc::spawn("vanishing receiver", python, true);
    peer.stdout
        .wait_for("the receiver's ready line", |l| l == "ready");
    let file = dir.path().join("big.bin");
    std::fs::write(&file, crate::util::random_bytes(64 << 20, 7)).unwrap();
    let target = format!("unix:{socket}");
    let out = run_socketkit(&["send", &target, &file.display().to_string()], b"");
    let line = assert_one_error_line(&out, 1);
    assert!(line.contains("big.bin"), "{line}");
    peer.close_stdin();
}

/// `name{service="echo"} VALUE` from a scrape.
fn metric(page: &str, name: &str) -> u64 {
    let prefix = format!("{name}{{service=\"echo\"}} ");
    page.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in\n{page}"))
        .trim()
        .parse()
        .unwrap()
}

fn scrape(url: &str) -> String {
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--fail", "--max-time", "10", url]);
    let out = run(curl, b"");
    assert_success("curl", &out);
    text(&out.stdout)
}

/// `serve --metrics`: curl scrapes while two connections are open and after
/// they close; a peer the access list refuses is counted too.
#[test]
fn metrics_are_scraped_while_connections_are_open_and_after() {
    let server = Server::start(
        &[
            "serve",
            "echo",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--deny",
            "127.0.0.2",
        ],
        2,
    );
    let url = server.addrs[1].clone();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"));
    let target = crate::util::host_port(server.addr()).to_owned();
    let mut clients = Vec::new();
    for message in [&b"hello\n"[..], b"metrics!\n"] {
        let mut client = TcpStream::connect(&target).unwrap();
        client.write_all(message).unwrap();
        let mut echoed = vec![0; message.len()];
        client.read_exact(&mut echoed).unwrap();
        assert_eq!(echoed, message);
        clients.push(client);
    }
    let page = scrape(&url);
    assert_eq!(metric(&page, "socketkit_connections_open"), 2, "{page}");
    assert_eq!(metric(&page, "socketkit_connections_total"), 2);
    assert_eq!(metric(&page, "socketkit_connections_refused_total"), 0);
    assert!(
        page.contains("# TYPE socketkit_received_bytes counter"),
        "{page}"
    );

    // A refused peer (from 127.0.0.2) is closed at once and counted.
    let refused = r#"
s = socket.socket()
s.bind(("127.0.0.2", 0))
s.connect((sys.argv[1], int(sys.argv[2])))
s.settimeout(10)
print(len(s.recv(10)))
"#;
    let port = crate::util::port_of(server.addr()).to_string();
    let out = run(python_cmd(refused, &["127.0.0.1", &port]), b"");
    assert_success("refused peer", &out);
    assert_eq!(text(&out.stdout).trim(), "0");

    for mut client in clients {
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }
    // The server counts a connection closed once its task ends, just after
    // our EOF: wait for the gauge to fall (no event announces it).
    wait_until("both connections counted closed", || {
        metric(&scrape(&url), "socketkit_connections_open") == 0
    });
    let page = scrape(&url);
    assert_eq!(metric(&page, "socketkit_connections_total"), 2, "{page}");
    assert_eq!(metric(&page, "socketkit_connections_refused_total"), 1);
    assert_eq!(metric(&page, "socketkit_received_bytes_total"), 15);
    assert_eq!(metric(&page, "socketkit_sent_bytes_total"), 15);
    assert_eq!(metric(&page, "socketkit_handler_errors_total"), 0);
    assert_eq!(metric(&page, "socketkit_datagrams_total"), 0);

    // Anything but GET /metrics is not the page.
    let mut curl = Command::new("curl");
    curl.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(url.replace("/metrics", "/other"));
    assert_eq!(text(&run(curl, b"").stdout), "404");
}
