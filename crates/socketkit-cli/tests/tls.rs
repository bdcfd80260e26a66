//! TLS on every stream service and client: self-signed with a pinned
//! fingerprint, a private CA, mutual TLS, refusals, deadlines, and interop
//! with OpenSSL (`openssl s_client`) and socat (`OPENSSL-LISTEN`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::util::{run, socketkit, Proc, Server, WAIT};

/// A private PKI made by `socketkit pki init`, with clients `alice` and
/// `mallory`'s certificates from a different CA.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        for (sub, client) in [("pki", "alice"), ("other", "mallory")] {
            let out = run(
                socketkit([
                    "pki",
                    "init",
                    dir.path().join(sub).to_str().unwrap(),
                    "--client",
                    client,
                ]),
                b"",
            );
            crate::util::assert_success("pki init", &out);
        }
        Pki { dir }
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
}

/// `serve ARGS` with its own config directory (for --self-signed); returns
/// the server, its address and the fingerprint line's value.
fn start_tls(args: &[&str], config: &Path) -> (Proc, String, String) {
    let mut cmd = socketkit(args);
    cmd.env("XDG_CONFIG_HOME", config);
    let server = Proc::spawn(&args.join(" "), cmd, false);
    let addr = server.stdout.wait_for("the listening line", |l| {
        l.starts_with("listening on tls://")
    });
    let fingerprint = server.stdout.wait_for("the fingerprint line", |l| {
        l.starts_with("fingerprint sha256:")
    });
    (
        server,
        addr.strip_prefix("listening on ").unwrap().to_owned(),
        fingerprint.strip_prefix("fingerprint ").unwrap().to_owned(),
    )
}

fn connect(addr: &str, options: &[&str], input: &[u8]) -> Output {
    let mut args = vec!["connect", addr];
    args.extend_from_slice(options);
    run(socketkit(args), input)
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_stream_service_speaks_tls_with_a_pinned_self_signed_certificate() {
    let config = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        ("echo", b"ping\n", "ping\n"),
        ("upper", b"shout\n", "SHOUT\n"),
        ("hello", b"Ada\nexit\n", "Welcome!\nHello, Ada!\nBye!\n"),
        ("discard", b"gone\n", ""),
    ];
    let mut fingerprints = Vec::new();
    for (service, input, expected) in cases {
        let (_server, addr, pin) = start_tls(
            &["serve", service, "tls://127.0.0.1:0", "--self-signed"],
            config.path(),
        );
        let out = connect(&addr, &["--pin", &pin], input);
        assert_eq!(stdout_of(&out), expected, "{service}: {}", stderr_of(&out));
        fingerprints.push(pin);
    }
    fingerprints.dedup();
    assert_eq!(
        fingerprints.len(),
        1,
        "the self-signed identity is kept across restarts"
    );
    let (_server, addr, pin) = start_tls(
        &["serve", "daytime", "tls://127.0.0.1:0", "--self-signed"],
        config.path(),
    );
    let out = connect(&addr, &["--pin", &pin], b"");
    assert!(stdout_of(&out).ends_with("GMT\r\n"), "{}", stdout_of(&out));
    use std::os::unix::fs::PermissionsExt;
    let key = config.path().join("socketkit/tls/key.pem");
    assert_eq!(
        std::fs::metadata(key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_wrong_pin_or_an_unknown_issuer_is_refused_with_the_fingerprint_seen() {
    let config = tempfile::tempdir().unwrap();
    let (_server, addr, pin) = start_tls(
        &["serve", "echo", "tls://127.0.0.1:0", "--self-signed"],
        config.path(),
    );
    let wrong = format!("sha256:{}", "0".repeat(64));
    let out = connect(&addr, &["--pin", &wrong], b"secret\n");
    let line = crate::util::assert_error_with_hint(&out);
    assert!(
        line.contains("does not match the pinned") && line.contains(&pin),
        "{line}"
    );
    let out = connect(&addr, &[], b"secret\n");
    let line = crate::util::assert_error_with_hint(&out);
    assert!(
        line.contains("not issued by a trusted CA") && line.contains(&pin),
        "{line}"
    );
    let out = connect(&addr, &["--insecure"], b"anyway\n");
    assert_eq!(stdout_of(&out), "anyway\n");
    assert!(
        stderr_of(&out).contains("--insecure"),
        "a warning is printed"
    );
}

#[test]
fn a_private_ca_chain_and_mutual_tls() {
    let pki = Pki::new();
    let config = tempfile::tempdir().unwrap();
    let (cert, key, ca) = (
        pki.file("pki/server.pem"),
        pki.file("pki/server-key.pem"),
        pki.file("pki/ca.pem"),
    );
    let (_server, addr, _) = start_tls(
        &[
            "serve",
            "echo",
            "tls://127.0.0.1:0",
            "--cert",
            &cert,
            "--key",
            &key,
        ],
        config.path(),
    );
    assert_eq!(
        stdout_of(&connect(&addr, &["--ca", &ca], b"chain\n")),
        "chain\n"
    );
    let wrong_name = connect(
        &addr,
        &["--ca", &ca, "--servername", "elsewhere.example"],
        b"x\n",
    );
    assert!(
        crate::util::assert_error_with_hint(&wrong_name).contains("not valid for this server name")
    );

    let (_mutual, addr, _) = start_tls(
        &[
            "serve",
            "upper",
            "tls://127.0.0.1:0",
            "--cert",
            &cert,
            "--key",
            &key,
            "--client-ca",
            &ca,
        ],
        config.path(),
    );
    let alice = [
        "--ca",
        &ca,
        "--cert",
        &pki.file("pki/alice.pem"),
        "--key",
        &pki.file("pki/alice-key.pem"),
    ];
    assert_eq!(stdout_of(&connect(&addr, &alice, b"mutual\n")), "MUTUAL\n");
    let anonymous = connect(&addr, &["--ca", &ca], b"anonymous\n");
    assert_ne!(anonymous.status.code(), Some(0));
    assert_eq!(stdout_of(&anonymous), "");
}

/// An exec server with mutual TLS from `pki`, running commands in `dir`.
fn mtls_exec(pki: &Pki, dir: &Path) -> (Proc, String) {
    let ca = pki.file("pki/ca.pem");
    let args = [
        "serve",
        "exec",
        "tls://127.0.0.1:0",
        "--cert",
        &pki.file("pki/server.pem"),
        "--key",
        &pki.file("pki/server-key.pem"),
        "--client-ca",
        &ca,
        "--cwd",
        dir.to_str().unwrap(),
    ];
    let (server, addr, _) = start_tls(&args, dir);
    (server, addr)
}

fn exec_with(addr: &str, options: &[String], command: &[&str]) -> Output {
    let mut args: Vec<&str> = vec!["exec", addr];
    args.extend(options.iter().map(String::as_str));
    args.push("--");
    args.extend_from_slice(command);
    run(socketkit(args), b"")
}

#[test]
fn exec_over_mutual_tls_admits_only_certificates_of_its_ca() {
    let pki = Pki::new();
    let work = tempfile::tempdir().unwrap();
    let (server, addr) = mtls_exec(&pki, work.path());
    let ca = pki.file("pki/ca.pem");
    let marker: PathBuf = work.path().join("marker");
    let identity = |cert: &str, key: &str| {
        vec![
            "--ca".into(),
            ca.clone(),
            "--cert".into(),
            pki.file(cert),
            "--key".into(),
            pki.file(key),
        ]
    };

    let alice = identity("pki/alice.pem", "pki/alice-key.pem");
    let out = exec_with(&addr, &alice, &["echo", "alice ran"]);
    assert_eq!(stdout_of(&out), "alice ran\n", "{}", stderr_of(&out));

    // Another CA's client, a self-signed certificate, and none at all.
    let self_signed_dir = tempfile::tempdir().unwrap();
    let (_other, _, _) = start_tls(
        &["serve", "echo", "tls://127.0.0.1:0", "--self-signed"],
        self_signed_dir.path(),
    );
    let self_signed = self_signed_dir.path().join("socketkit/tls");
    let strangers = [
        identity("other/mallory.pem", "other/mallory-key.pem"),
        vec![
            "--ca".into(),
            ca.clone(),
            "--cert".into(),
            self_signed.join("cert.pem").to_str().unwrap().to_owned(),
            "--key".into(),
            self_signed.join("key.pem").to_str().unwrap().to_owned(),
        ],
        vec!["--ca".into(), ca.clone()],
    ];
    for stranger in &strangers {
        let out = exec_with(&addr, stranger, &["touch", marker.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(255),
            "{stranger:?}: {}",
            stderr_of(&out)
        );
        let line = crate::util::assert_one_error_line(&out, 255);
        assert!(line.contains("TLS"), "{line}");
    }
    assert!(!marker.exists(), "no stranger ran anything");
    server.stderr.wait_for("a refused handshake logged", |l| {
        l.contains("TLS handshake failed")
    });
}

#[test]
fn an_exec_client_refuses_an_unverified_server_before_sending_anything() {
    let pki = Pki::new();
    let work = tempfile::tempdir().unwrap();
    let (_server, addr) = mtls_exec(&pki, work.path());
    let marker = work.path().join("marker");
    let alice = |ca: &str| {
        vec![
            "--ca".to_owned(),
            pki.file(ca),
            "--cert".into(),
            pki.file("pki/alice.pem"),
            "--key".into(),
            pki.file("pki/alice-key.pem"),
        ]
    };
    let unknown_ca = exec_with(
        &addr,
        &alice("other/ca.pem"),
        &["touch", marker.to_str().unwrap()],
    );
    let line = crate::util::assert_one_error_line(&unknown_ca, 255);
    assert!(
        line.contains("not issued by a trusted CA") && line.contains("sha256:"),
        "{line}"
    );
    let mut wrong_name = alice("pki/ca.pem");
    wrong_name.extend(["--servername".to_owned(), "not-this-server".to_owned()]);
    let out = exec_with(&addr, &wrong_name, &["touch", marker.to_str().unwrap()]);
    assert!(
        crate::util::assert_one_error_line(&out, 255).contains("not valid for this server name")
    );
    assert!(!marker.exists());
}

#[test]
fn stalled_handshakes_hit_the_deadline_and_plaintext_fails_fast() {
    let config = tempfile::tempdir().unwrap();
    let (_server, addr, _) = start_tls(
        &[
            "serve",
            "echo",
            "tls://127.0.0.1:0",
            "--self-signed",
            "--handshake-timeout",
            "300ms",
        ],
        config.path(),
    );
    let mut silent = TcpStream::connect(crate::util::host_port(&addr)).unwrap();
    silent.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    silent
        .read_to_end(&mut rest)
        .expect("closed by the deadline, not by our timeout");

    let (_patient, addr, _) = start_tls(
        &[
            "serve",
            "echo",
            "tls://127.0.0.1:0",
            "--self-signed",
            "--handshake-timeout",
            "60s",
        ],
        config.path(),
    );
    let started = Instant::now();
    let mut plain = TcpStream::connect(crate::util::host_port(&addr)).unwrap();
    plain.set_read_timeout(Some(WAIT)).unwrap();
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "closed long before the 60 s deadline"
    );
    assert!(!answer.starts_with(b"GET"), "plaintext is never echoed");
}

#[test]
fn tls_to_a_plaintext_port_fails_fast() {
    let server = Server::start(&["serve", "echo", "127.0.0.1:0"], 1);
    let tls_addr = format!("tls://{}", crate::util::host_port(server.addr()));
    let out = connect(&tls_addr, &["--insecure"], b"hello\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("TLS handshake"),
        "{}",
        stderr_of(&out)
    );
}

/// In threads mode plain connections of echo and upper read blocking; a
/// TLS session cannot (its bytes go through rustls), so it stays on the
/// thread's event loop and must serve all the same, next to a plaintext
/// listener of the same server.
#[test]
fn threads_mode_serves_tls_and_plaintext_side_by_side() {
    let config = tempfile::tempdir().unwrap();
    for (service, expected) in [("echo", "one\ntwo\n"), ("upper", "ONE\nTWO\n")] {
        let args = [
            "serve",
            service,
            "tls://127.0.0.1:0",
            "tcp://127.0.0.1:0",
            "--self-signed",
            "--mode",
            "threads",
        ];
        let mut cmd = socketkit(args);
        cmd.env("XDG_CONFIG_HOME", config.path());
        let server = Proc::spawn(&args.join(" "), cmd, false);
        let mut tls = None;
        let mut tcp = None;
        while tls.is_none() || tcp.is_none() {
            let line = server.stdout.wait_for("the listening lines", |l| {
                l.starts_with("listening on ") || l.starts_with("fingerprint ")
            });
            if let Some(addr) = line.strip_prefix("listening on tls://") {
                tls = Some(format!("tls://{addr}"));
            } else if let Some(addr) = line.strip_prefix("listening on ") {
                tcp = Some(addr.to_owned());
            }
        }
        let (tls, tcp) = (tls.unwrap(), tcp.unwrap());
        let out = connect(&tls, &["--insecure"], b"one\ntwo\n");
        assert_eq!(
            stdout_of(&out),
            expected,
            "{service} over TLS: {}",
            stderr_of(&out)
        );
        assert!(
            out.status.success(),
            "{service} over TLS: {}",
            stderr_of(&out)
        );
        let out = connect(&tcp, &[], b"one\ntwo\n");
        assert_eq!(stdout_of(&out), expected, "{service}: {}", stderr_of(&out));
        assert!(out.status.success(), "{service}: {}", stderr_of(&out));
    }
}

#[test]
fn openssl_s_client_talks_to_our_tls_echo() {
    let config = tempfile::tempdir().unwrap();
    let (_server, addr, _) = start_tls(
        &["serve", "echo", "tls://127.0.0.1:0", "--self-signed"],
        config.path(),
    );
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        crate::util::host_port(&addr),
        "-quiet",
    ]);
    let mut client = Proc::spawn("openssl s_client", cmd, true);
    client.write_stdin(b"interop with openssl\n");
    client
        .stdout
        .wait_for("the echo through openssl", |l| l == "interop with openssl");
}

#[test]
fn our_client_talks_to_socat_openssl_listen() {
    let pki = Pki::new();
    let port = crate::util::free_port();
    let listen = format!(
        "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,cert={},key={},verify=0",
        pki.file("pki/server.pem"),
        pki.file("pki/server-key.pem")
    );
    let mut socat = Command::new("socat");
    socat.args(["-T", "10", &listen, "SYSTEM:tr a-z A-Z"]);
    let _peer = Proc::spawn("socat", socat, false);
    let addr = format!("tls://127.0.0.1:{port}");
    let deadline = Instant::now() + WAIT;
    let out = loop {
        let out = connect(
            &addr,
            &["--ca", &pki.file("pki/ca.pem")],
            b"from socketkit\n",
        );
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        // socat may not be listening yet: nothing to wait on but retrying.
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(stdout_of(&out), "FROM SOCKETKIT\n", "{}", stderr_of(&out));
}

#[test]
fn exec_trusts_on_first_use_and_then_insists_on_the_same_certificate() {
    let work = tempfile::tempdir().unwrap();
    let token = work.path().join("token");
    std::fs::write(&token, "tofu-secret").unwrap();
    let token = token.to_str().unwrap().to_owned();
    let addr = format!("tls://127.0.0.1:{}", crate::util::free_port());
    let serve = |identity: &str| {
        let args = [
            "serve",
            "exec",
            &addr,
            "--self-signed",
            "--token-file",
            &token,
            "--cwd",
            "/",
        ];
        start_tls(&args, &work.path().join(identity))
    };
    let client_config = work.path().join("client");
    let exec = || {
        let mut cmd = socketkit([
            "exec",
            &addr,
            "--tofu",
            "--token-file",
            &token,
            "--",
            "echo",
            "ok",
        ]);
        cmd.env("XDG_CONFIG_HOME", &client_config);
        run(cmd, b"")
    };
    let (first_server, _, fingerprint) = serve("first");
    let first = exec();
    assert_eq!(stdout_of(&first), "ok\n", "{}", stderr_of(&first));
    assert!(
        stderr_of(&first).contains("first contact") && stderr_of(&first).contains(&fingerprint)
    );
    let again = exec();
    assert_eq!(stdout_of(&again), "ok\n", "{}", stderr_of(&again));
    assert!(!stderr_of(&again).contains("first contact"));
    drop(first_server);
    let (_impostor, _, _) = serve("impostor");
    let refused = exec();
    let line = crate::util::assert_one_error_line(&refused, 255);
    assert!(
        line.contains("not the one recorded") && line.contains(&fingerprint),
        "{line}"
    );
}
