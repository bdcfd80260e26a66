//! File transfer end to end: `serve recv` and `send` over loopback, hashes
//! checked independently with the blake3 crate, resume, hostile names and
//! symlinks, liars, tokens, limits and concurrency.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use util::{run, socketkit, Proc, Server};

struct Receiver {
    server: Server,
    dir: tempfile::TempDir,
}

impl Receiver {
    fn start(extra: &[&str]) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("inbox")).unwrap();
        let inbox = dir.path().join("inbox");
        let mut args = vec![
            "serve",
            "recv",
            "127.0.0.1:0",
            "--dir",
            inbox.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let server = Server::start(&args, 1);
        Receiver { server, dir }
    }

    fn inbox(&self) -> PathBuf {
        self.dir.path().join("inbox")
    }

    fn send(&self, files: &[&Path], extra: &[&str]) -> Output {
        let mut args: Vec<&str> = vec!["send", self.server.addr()];
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        args.extend_from_slice(extra);
        run(socketkit(args), b"")
    }

    fn inbox_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.inbox())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn b3(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn files_of_every_size_arrive_byte_exact() {
    let receiver = Receiver::start(&[]);
    let source = tempfile::tempdir().unwrap();
    let sizes = [
        ("zero", 0usize),
        ("one", 1),
        ("mebibyte", 1 << 20),
        ("big", 200 << 20),
    ];
    let mut paths = Vec::new();
    let mut expected = String::new();
    for (name, size) in sizes {
        let bytes = util::random_bytes(size, size as u64 + 7);
        let path = source.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        expected.push_str(&format!("{}  {name}\n", b3(&bytes)));
        paths.push(path);
    }
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let out = receiver.send(&refs, &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        stdout_of(&out),
        expected,
        "the sender prints b3sum-style lines"
    );
    for (name, size) in sizes {
        let stored = std::fs::read(receiver.inbox().join(name)).unwrap();
        assert_eq!(stored.len(), size);
        assert!(
            stored == util::random_bytes(size, size as u64 + 7),
            "{name} differs"
        );
    }
    assert_eq!(
        receiver.inbox_names(),
        ["big", "mebibyte", "one", "zero"],
        "no .part left"
    );
}

#[test]
fn stdin_with_a_name_and_a_json_summary() {
    let receiver = Receiver::start(&[]);
    let out = run(
        socketkit([
            "send",
            receiver.server.addr(),
            "-",
            "--name",
            "piped.txt",
            "--json",
        ]),
        b"from a pipe\n",
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let line = stdout_of(&out);
    for field in [
        "\"name\":\"piped.txt\"",
        "\"bytes\":12",
        "\"resumed_from\":0",
        "\"mb_per_s\"",
        "\"seconds\"",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    assert!(line.contains(&b3(b"from a pipe\n")));
    assert_eq!(
        std::fs::read(receiver.inbox().join("piped.txt")).unwrap(),
        b"from a pipe\n"
    );
}

fn python_sender(receiver: &Receiver, args: &[&str], stdin: bool) -> Proc {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/transfer_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(util::host_port(receiver.server.addr()))
        .args(args);
    Proc::spawn("python sender", cmd, stdin)
}

#[test]
fn an_interrupted_transfer_resumes_and_a_tampered_part_restarts() {
    let receiver = Receiver::start(&[]);
    let source = tempfile::tempdir().unwrap();
    let bytes = util::random_bytes(3 << 20, 11);
    let path = source.path().join("movie.bin");
    std::fs::write(&path, &bytes).unwrap();
    let half = (3 << 20) / 2;
    let path_text = path.to_str().unwrap().to_owned();
    let partial = python_sender(
        &receiver,
        &["partial", &path_text, "movie.bin", &half.to_string()],
        true,
    );
    partial
        .stdout
        .wait_for("the partial send", |l| l.starts_with("SENT"));
    drop(partial); // killed: the receiver keeps movie.bin.part
    let part = receiver.inbox().join("movie.bin.part");
    util::wait_until("the partial file to hold the bytes sent", || {
        std::fs::metadata(&part)
            .map(|m| m.len() as usize == half)
            .unwrap_or(false)
    });
    let out = receiver.send(&[&path], &["--json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains(&format!("\"resumed_from\":{half}")),
        "{}",
        stdout_of(&out)
    );
    assert!(stdout_of(&out).contains(&b3(&bytes)));
    assert!(std::fs::read(receiver.inbox().join("movie.bin")).unwrap() == bytes);

    // A partial copy that does not match our prefix is thrown away.
    std::fs::remove_file(receiver.inbox().join("movie.bin")).unwrap();
    std::fs::write(&part, vec![0u8; half]).unwrap();
    let out = receiver.send(&[&path], &["--json"]);
    assert!(
        stdout_of(&out).contains("\"resumed_from\":0"),
        "{}",
        stdout_of(&out)
    );
    assert!(std::fs::read(receiver.inbox().join("movie.bin")).unwrap() == bytes);
}

#[test]
fn a_receiver_killed_midway_leaves_no_final_file() {
    let mut receiver = Receiver::start(&[]);
    let source = tempfile::tempdir().unwrap();
    let path = source.path().join("doc.bin");
    std::fs::write(&path, util::random_bytes(1 << 20, 3)).unwrap();
    let path_text = path.to_str().unwrap().to_owned();
    let partial = python_sender(
        &receiver,
        &["partial", &path_text, "doc.bin", "100000"],
        true,
    );
    partial
        .stdout
        .wait_for("the partial send", |l| l.starts_with("SENT"));
    util::signal(receiver.server.pid(), "KILL");
    receiver.server.proc.wait_exit();
    assert!(!receiver.inbox().join("doc.bin").exists());
}

#[test]
fn hostile_names_are_refused_before_anything_is_created() {
    let receiver = Receiver::start(&[]);
    for name in [
        "../../etc/passwd",
        "..",
        ".",
        "a/b",
        "/etc/passwd",
        "C:\\x",
        "esc\u{1b}[2J",
        "x.part",
    ] {
        let out = run(
            socketkit(["send", receiver.server.addr(), "-", "--name", name]),
            b"evil",
        );
        let line = util::assert_one_error_line(&out, 1);
        assert!(line.contains("unsafe file name"), "{name:?}: {line}");
    }
    assert!(receiver.inbox_names().is_empty());
    assert!(!receiver.dir.path().join("passwd").exists());
}

#[test]
fn symlinks_planted_in_the_directory_are_never_followed() {
    let receiver = Receiver::start(&["--overwrite"]);
    let outside = receiver.dir.path().join("outside.txt");
    std::fs::write(&outside, "precious").unwrap();
    std::os::unix::fs::symlink(&outside, receiver.inbox().join("evil.part")).unwrap();
    let out = run(
        socketkit(["send", receiver.server.addr(), "-", "--name", "evil"]),
        b"overwritten?",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    std::os::unix::fs::symlink(&outside, receiver.inbox().join("victim")).unwrap();
    let out = run(
        socketkit(["send", receiver.server.addr(), "-", "--name", "victim"]),
        b"replaced",
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
    let victim = receiver.inbox().join("victim");
    assert!(
        std::fs::symlink_metadata(&victim).unwrap().is_file(),
        "the link itself was replaced"
    );
    assert_eq!(std::fs::read_to_string(victim).unwrap(), "replaced");
}

#[test]
fn existing_files_are_kept_unless_overwrite() {
    let receiver = Receiver::start(&[]);
    std::fs::write(receiver.inbox().join("notes.txt"), "old").unwrap();
    let out = run(
        socketkit(["send", receiver.server.addr(), "-", "--name", "notes.txt"]),
        b"new",
    );
    assert!(util::assert_one_error_line(&out, 1).contains("exists"));
    assert_eq!(
        std::fs::read_to_string(receiver.inbox().join("notes.txt")).unwrap(),
        "old"
    );
    let permissive = Receiver::start(&["--overwrite"]);
    std::fs::write(permissive.inbox().join("notes.txt"), "old").unwrap();
    let out = run(
        socketkit(["send", permissive.server.addr(), "-", "--name", "notes.txt"]),
        b"new",
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        std::fs::read_to_string(permissive.inbox().join("notes.txt")).unwrap(),
        "new"
    );
}

#[test]
fn a_wrong_token_writes_nothing() {
    let secrets = tempfile::tempdir().unwrap();
    let (good, bad) = (secrets.path().join("good"), secrets.path().join("bad"));
    std::fs::write(&good, "right").unwrap();
    std::fs::write(&bad, "wrong").unwrap();
    let receiver = Receiver::start(&["--token-file", good.to_str().unwrap()]);
    let send_with = |token: &Path| {
        let token = token.to_str().unwrap();
        let addr = receiver.server.addr();
        let args = ["send", addr, "-", "--name", "x", "--token-file", token];
        run(socketkit(args), b"data")
    };
    let out = send_with(&bad);
    assert!(util::assert_one_error_line(&out, 1).contains("authentication failed"));
    let out = run(
        socketkit(["send", receiver.server.addr(), "-", "--name", "x"]),
        b"data",
    );
    assert!(util::assert_one_error_line(&out, 1).contains("token"));
    assert!(receiver.inbox_names().is_empty());
    // The address's next attempt is judged only once the failure's penalty
    // has passed; then the right token gets in.
    util::wait_until("the right token accepted after the penalty", || {
        let out = send_with(&good);
        let refused = stderr_of(&out);
        assert!(
            out.status.success() || refused.contains("try again"),
            "{refused}"
        );
        out.status.success()
    });
}

#[test]
fn senders_lying_about_the_size_are_caught() {
    let receiver = Receiver::start(&[]);
    let more = python_sender(&receiver, &["lie", "more.bin", "10", "200000"], false);
    more.stdout.wait_for("a mismatch error", |l| {
        l.starts_with("ERROR") && l.contains("mismatch")
    });
    let fewer = python_sender(&receiver, &["lie", "fewer.bin", "200000", "10"], false);
    fewer.stdout.wait_for("a mismatch error", |l| {
        l.starts_with("ERROR") && l.contains("mismatch")
    });
    drop((more, fewer));
    util::wait_until("no partial files left", || {
        receiver.inbox_names().is_empty()
    });
}

#[test]
fn offers_over_the_limit_or_the_free_space_are_refused_up_front() {
    let receiver = Receiver::start(&["--max-size", "1000"]);
    let big = python_sender(&receiver, &["offer", "big.bin", "1001"], false);
    big.stdout.wait_for("too large", |l| {
        l.starts_with("ERROR") && l.contains("too_large")
    });
    let unlimited = Receiver::start(&[]);
    let huge = python_sender(
        &unlimited,
        &["offer", "huge.bin", &(1u64 << 60).to_string()],
        false,
    );
    huge.stdout.wait_for("no space", |l| {
        l.starts_with("ERROR") && l.contains("no_space")
    });
}

#[test]
fn twenty_senders_at_once() {
    let receiver = Receiver::start(&[]);
    let source = tempfile::tempdir().unwrap();
    let mut senders: Vec<(Proc, Vec<u8>, String)> = (0..20)
        .map(|n| {
            let bytes = util::random_bytes(1 << 20, n + 100);
            let name = format!("file-{n}.bin");
            let path = source.path().join(&name);
            std::fs::write(&path, &bytes).unwrap();
            let cmd = socketkit(["send", receiver.server.addr(), path.to_str().unwrap()]);
            (Proc::spawn(&name, cmd, false), bytes, name)
        })
        .collect();
    for (sender, bytes, name) in &mut senders {
        sender
            .stdout
            .wait_for(name, |l| l == format!("{}  {name}", b3(bytes)));
        assert!(sender.wait_exit().success());
        assert!(std::fs::read(receiver.inbox().join(&name)).unwrap() == *bytes);
    }
}

/// A 1 MiB tmpfs of our own, unmounted when dropped (even if the test
/// fails).
struct TinyFilesystem(PathBuf);

impl TinyFilesystem {
    /// Mounts it at `at` when this test may (root); `None` and a note
    /// otherwise.
    fn mount(at: &Path) -> Option<TinyFilesystem> {
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=1m",
                "socketkit-test",
                at.to_str().unwrap(),
            ])
            .output()
            .is_ok_and(|out| out.status.success());
        if !mounted {
            eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        }
        mounted.then(|| TinyFilesystem(at.to_path_buf()))
    }
}

impl Drop for TinyFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_reported_to_both_sides_and_nothing_is_renamed() {
    let root = tempfile::tempdir().unwrap();
    let inbox = root.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let Some(_mounted) = TinyFilesystem::mount(&inbox) else {
        return;
    };
    let server = Server::start(
        &[
            "serve",
            "recv",
            "127.0.0.1:0",
            "--dir",
            inbox.to_str().unwrap(),
        ],
        1,
    );
    // From a pipe the size is unknown, so only the write itself can fail.
    let out = run(
        socketkit(["send", server.addr(), "-", "--name", "too-big.bin"]),
        &util::random_bytes(4 << 20, 5),
    );
    let line = util::assert_one_error_line(&out, 1);
    assert!(line.contains("not enough space"), "{line}");
    assert!(!inbox.join("too-big.bin").exists());
    drop(server);
}

#[test]
fn before_authenticating_a_sender_may_not_start_a_big_frame() {
    use std::io::{Read, Write};
    // A long handshake deadline: an old receiver reserved the megabyte and
    // waited that long for it.
    let receiver = Receiver::start(&["--handshake-timeout", "60s"]);
    let mut peer = std::net::TcpStream::connect(util::host_port(receiver.server.addr())).unwrap();
    peer.set_read_timeout(Some(util::WAIT)).unwrap();
    let mut header = (1024u32 * 1024 + 1).to_be_bytes().to_vec();
    header.push(0x24); // FILE_DATA, before any HELLO
    peer.write_all(&header).unwrap();
    let mut received = Vec::new();
    peer.read_to_end(&mut received)
        .expect("the receiver closes at once");
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.contains("\"kind\":\"protocol\"") && text.contains("the limit is 4096"),
        "{text}"
    );
}
