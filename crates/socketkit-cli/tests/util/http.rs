//! What `get`'s tests add to the shared harness (`util`): servers that
//! speak HTTP on free loopback ports — nginx (its own prefix and config in
//! a temporary directory) and `Canned`, a std TcpListener answering with
//! exact bytes — and the assertions the tests read as specifications.
//! Every process started here is killed by PID when its handle is dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::util::{self, free_port, WAIT};

/// `socketkit get ARGS...`, run to completion (bounded).
pub fn get(args: &[&str]) -> Output {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    util::run_socketkit(&all, b"")
}

pub fn stderr(out: &Output) -> String {
    util::text(&out.stderr)
}

pub fn stdout(out: &Output) -> String {
    util::text(&out.stdout)
}

/// Asserts success and returns stdout.
pub fn ok(out: &Output) -> Vec<u8> {
    util::assert_success("get", out);
    out.stdout.clone()
}

/// Asserts the error contract (one `socketkit: ` line, exit `code`, no
/// panic) and that the line contains `needle`.
pub fn fails(out: &Output, code: i32, needle: &str) {
    let line = util::assert_one_error_line(out, code);
    assert!(line.contains(needle), "expected '{needle}' in: {line}");
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

/// An nginx site (`{port0}`, `{root}`) with a page saying how many requests
/// its connection has carried: `requests=2` proves keep-alive.
pub const COUNTING_SITE: &str = r#"
  server {
    listen 127.0.0.1:{port0};
    root {root};
    location = /conn { default_type text/plain; return 200 "requests=$connection_requests\n"; }
  }
"#;

/// `socketkit pki init DIR/SUB` (with `--name` per entry of `names`) for an
/// nginx TLS listener: `SUB/server.pem` and `SUB/server-key.pem`, the key
/// made readable whatever user nginx runs as (test keys only).
pub fn nginx_pki(dir: &Path, sub: &str, names: &[&str]) {
    let path = dir.join(sub);
    let mut args = vec!["pki", "init", path.to_str().unwrap()];
    for name in names {
        args.extend(["--name", name]);
    }
    util::assert_success("pki init", &util::run_socketkit(&args, b""));
    use std::os::unix::fs::PermissionsExt;
    let readable = std::fs::Permissions::from_mode(0o644);
    std::fs::set_permissions(path.join("server-key.pem"), readable).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The TLS site of [`nginx_tls`]: `{locations}` and `{more}` are filled in
/// before the `{portN}`, `{dir}` and `{root}` placeholders.
const TLS_SITE: &str = r#"
  server {
    listen 127.0.0.1:{port0} ssl;
    ssl_certificate {dir}/pki/server.pem;
    ssl_certificate_key {dir}/pki/server-key.pem;
    root {root};
    {locations}
  }
{more}"#;

/// nginx with TLS on `{port0}`, its certificate from a fresh test CA in
/// `pki/` (`pki/ca.pem`; for localhost, 127.0.0.1 and ::1, see
/// [`nginx_pki`]), serving `hello.txt` ("hello over tls\n"). The TLS tests
/// of `get`, `http-proxy` and the proxy clients share this set-up;
/// `locations` go inside that server block, `more` after it (further
/// `server` blocks) and `prepare` adds to the directory for what one test
/// needs beyond it.
pub fn nginx_tls(locations: &str, more: &str, prepare: impl Fn(&Path)) -> Nginx {
    let servers = TLS_SITE
        .replace("{locations}", locations)
        .replace("{more}", more);
    Nginx::start(&servers, |dir| {
        std::fs::write(dir.join("www/hello.txt"), "hello over tls\n").unwrap();
        nginx_pki(dir, "pki", &[]);
        prepare(dir);
    })
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
