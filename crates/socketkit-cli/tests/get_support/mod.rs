//! A small harness for `get`'s tests: run the real binary with a time
//! bound, and start the servers it talks to on free loopback ports — nginx
//! (own prefix and config in a temporary directory), Python's http.server,
//! and `Canned`, a std TcpListener that answers with exact bytes. Every
//! process started here is killed by PID when its handle is dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The bound on every wait: generous, the machine is small and shared.
pub const WAIT: Duration = Duration::from_secs(30);

/// The `socketkit` binary with `args`.
pub fn socketkit<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_socketkit"));
    cmd.args(args).env_remove("RUST_LOG");
    cmd
}

/// Runs `cmd` to completion (killed after [`WAIT`]) with empty stdin.
pub fn run(mut cmd: Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    finish(child)
}

/// Waits for `child` and collects its piped output; kills it and fails
/// the test if it runs past [`WAIT`].
pub fn finish(child: Child) -> Output {
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = done.send(());
        out
    });
    if finished.recv_timeout(WAIT).is_err() {
        // SAFETY: kill(2) on the PID of our own child, not yet reaped.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        panic!("process {pid} did not finish within {WAIT:?}");
    }
    waiter.join().unwrap().expect("wait")
}

/// `socketkit get ARGS...`.
pub fn get(args: &[&str]) -> Output {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    run(socketkit(all))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(out: &Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        stderr(out)
    );
    out.stdout.clone()
}

/// Asserts a one-line error containing `needle`, with exit status `code`.
pub fn fails(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("socketkit: "))
        .collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert!(lines[0].contains(needle), "expected '{needle}' in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Names of the files in `dir` (temporary files included).
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A port nothing listens on right now (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until_accepting(port: u16, child: &mut Child, log: &Path) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            assert!(
                log.contains("Address already in use"),
                "nginx exited {status}: {log}"
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nginx did not accept on port {port} within {WAIT:?}");
}

/// The nginx binary: on PATH, or where Debian puts it.
fn nginx_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").map(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nginx"))
            .find(|p| p.exists())
    });
    on_path
        .flatten()
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
}

/// nginx in the foreground, one process (`master_process off`), with its
/// prefix, config, logs and document root in a temporary directory.
pub struct Nginx {
    child: Child,
    pub dir: tempfile::TempDir,
    /// One free port per `{port0}`, `{port1}`, ... in the config.
    pub ports: Vec<u16>,
}

impl Nginx {
    /// Starts nginx with `servers` (the inside of its `http {}` block, with
    /// `{root}`, `{dir}` and `{portN}` placeholders). `prepare` fills the
    /// directory (document root `www/`) first.
    pub fn start(servers: &str, prepare: impl Fn(&Path)) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        // The document root must be readable whoever nginx runs as.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(dir.path().join("www")).unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        prepare(dir.path());
        let count = (0..10)
            .take_while(|i| servers.contains(&format!("{{port{i}}}")))
            .count();
        for _attempt in 0..5 {
            let ports: Vec<u16> = (0..count).map(|_| free_port()).collect();
            let mut http = servers
                .replace("{root}", &dir.path().join("www").display().to_string())
                .replace("{dir}", &dir.path().display().to_string());
            for (i, port) in ports.iter().enumerate() {
                http = http.replace(&format!("{{port{i}}}"), &port.to_string());
            }
            let conf = format!(
                "daemon off;\nmaster_process off;\nerror_log {dir}/error.log info;\npid {dir}/nginx.pid;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n  gzip off;\n  sendfile on;\n  default_type application/octet-stream;\n\
                 client_body_temp_path tmp/body;\n  proxy_temp_path tmp/proxy;\n  fastcgi_temp_path tmp/fastcgi;\n\
                 uwsgi_temp_path tmp/uwsgi;\n  scgi_temp_path tmp/scgi;\n{http}\n}}\n",
                dir = dir.path().display()
            );
            std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
            let log = dir.path().join("error.log");
            let _ = std::fs::remove_file(&log);
            let mut child = Command::new(nginx_binary())
                .arg("-p")
                .arg(dir.path())
                .args(["-c", "nginx.conf", "-e"])
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nginx is needed for these tests (apt-get install nginx)");
            if ports
                .iter()
                .all(|p| wait_until_accepting(*p, &mut child, &log))
            {
                return Nginx { child, dir, ports };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("nginx could not get free ports");
    }

    pub fn url(&self, index: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[index])
    }

    pub fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process whose stdout lines are read as they come.
pub struct Spawned {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Spawned {
    pub fn start(mut cmd: Command) -> Spawned {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Spawned { child, lines }
    }

    /// The first line satisfying `pred`, within [`WAIT`].
    pub fn wait_line(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => continue,
                Err(e) => panic!("no expected line within {WAIT:?}: {e}"),
            }
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a [`Canned`] server does on one connection, after reading the
/// request head.
pub enum Reply {
    /// Writes these bytes, then closes.
    Close(Vec<u8>),
    /// Writes these bytes, then keeps the connection open until the client
    /// goes away (or [`WAIT`] passes).
    Hold(Vec<u8>),
}

/// A std TcpListener answering each connection, in order, with exact bytes;
/// it records the exact request bytes it read.
pub struct Canned {
    pub addr: SocketAddr,
    thread: JoinHandle<Vec<Vec<u8>>>,
}

impl Canned {
    pub fn serve(bind: &str, replies: Vec<Reply>) -> Canned {
        let listener = TcpListener::bind(bind).unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for reply in replies {
                let (mut conn, _) = listener.accept().unwrap();
                conn.set_read_timeout(Some(WAIT)).unwrap();
                requests.push(read_head(&mut conn));
                let (bytes, hold) = match reply {
                    Reply::Close(bytes) => (bytes, false),
                    Reply::Hold(bytes) => (bytes, true),
                };
                // The client may give up early (that is what some tests check).
                let _ = conn.write_all(&bytes);
                if hold {
                    let _ = conn.read_to_end(&mut Vec::new());
                }
            }
            requests
        });
        Canned { addr, thread }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The request heads received, once every reply was sent.
    pub fn requests(self) -> Vec<Vec<u8>> {
        self.thread.join().unwrap()
    }
}

/// Reads up to and including the blank line ending a request head.
fn read_head(conn: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    head
}
