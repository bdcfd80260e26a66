//! Command-line definitions (clap derive): every flag, its default and help.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use socketkit::addr::{Family, SourceAddress};
use socketkit::client::http::{GetOptions, HttpUrl};
use socketkit::services::exec::StartupLimits;
use socketkit::tls::Fingerprint;
use socketkit::transport::{ConnectOptions, ProxyUrl};
use socketkit::Endpoint;
use socketkit::{client, server};

use crate::bench::BenchArgs;

/// socketkit: ncat/socat-class services and clients, built on a typed
/// socketserver for tokio.
///
/// Addresses: HOST:PORT, [V6]:PORT, :PORT (all interfaces, IPv4 and IPv6),
/// PORT (127.0.0.1), tcp://…, udp://…, tls://…, unix:PATH, unixgram:PATH.
#[derive(Debug, Parser)]
#[command(name = "socketkit", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a service; prints `listening on ADDR` per bound socket.
    ///
    /// `socketkit serve SERVICE [ADDR...] [FLAGS]`: every service serves TCP,
    /// TLS and Unix streams; echo, upper, discard, daytime and forward also
    /// UDP and Unix datagrams. Each takes the common flags (limits, mode,
    /// TLS, access, --metrics) and its own, listed in `serve SERVICE
    /// --help`. With TLS a `fingerprint sha256:…` line follows the listening
    /// lines. SIGINT/SIGTERM shut down gracefully; a second signal exits at
    /// once.
    Serve(ServeCommand),
    /// Connect stdin/stdout to a socket, like nc.
    ///
    /// Binary-safe and full-duplex. At end of stdin the socket is half-closed
    /// and output continues until the peer closes; if the peer closes first,
    /// stdin still goes out until it ends or stays quiet for 1 s. -x dumps
    /// every chunk each way as `hexdump -C` would. With udp:// or unixgram:
    /// each stdin line is sent as one datagram and each reply printed.
    Connect(ConnectArgs),
    /// Wait for one connection and wire it to stdin/stdout, like nc -l.
    ///
    /// `listening on ADDR` (and, for tls://, `fingerprint …`) go to stderr
    /// before the first accept; stdout carries only data. Relays exactly as
    /// connect does (the peer's close does not cut stdin short); exits 0
    /// once both directions ended, 1 on a reset. -k accepts the next
    /// connection after each ends, until SIGINT/SIGTERM. On udp:// and
    /// unixgram: datagrams are printed and stdin lines go to the latest
    /// sender.
    Listen(ListenArgs),
    /// Check whether ports accept connections (connect_ex).
    ///
    /// Prints `open|closed|timeout|error ADDR LATENCY` per target (--open:
    /// open ones only); exits 0 only if all are open. A port may be a list
    /// and ranges: `check 127.0.0.1:1-1024 --open` is a quick port scan.
    Check(CheckArgs),
    /// Run a command on an exec server, like `ssh host cmd`.
    ///
    /// Streams the command's stdout and stderr to ours, forwards stdin (EOF
    /// included) and Ctrl-C, and exits with the command's status (128+N for
    /// signal N; 255 when socketkit itself fails). Without a command, a
    /// `>>:` prompt runs one command per line. With no ADDR it uses the local
    /// exec socket (`serve exec` with no address).
    Exec(ExecArgs),
    /// Send files to a `serve recv` receiver, verified end to end.
    ///
    /// Files go one after the other on one connection; an interrupted
    /// transfer resumes where the receiver's partial copy ends (after both
    /// sides agree on its hash). Prints `BLAKE3-HEX  NAME` per file (as b3sum
    /// does) once the receiver confirmed the same hash; exits 1 if any file
    /// failed.
    Send(SendArgs),
    /// Download a URL over HTTP/1.1 (http:// or https://), like a small curl.
    ///
    /// The body goes to stdout, or to FILE with -o (written under a temporary
    /// name in the same directory and renamed only when complete). --raw shows
    /// the exact bytes that crossed the socket. Exits 1 on any failure, and
    /// with --fail on a 4xx/5xx status.
    Get(GetArgs),
    /// Manage a private PKI for mutual TLS.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Load an echo server and measure it: ping-pong, bulk or connection churn.
    ///
    /// Opens every connection, then starts the clock. Every echoed byte is
    /// checked (each message differs), latency goes into an HDR histogram.
    /// Prints a table or one --json line; exits 1 if any echo differed from
    /// what was sent or nothing was echoed.
    Bench(BenchArgs),
    /// Print a shell completion script to stdout.
    ///
    /// bash: `socketkit completions bash > ~/.local/share/bash-completion/completions/socketkit`;
    /// zsh: into a directory on $fpath as `_socketkit`; fish:
    /// `~/.config/fish/completions/socketkit.fish`.
    Completions(CompletionsArgs),
    /// Write man pages into DIR: socketkit.1 and one per subcommand
    /// (socketkit-serve-echo.1, ...).
    ///
    /// `socketkit man ~/.local/share/man/man1` then `man socketkit-serve`.
    Man(ManArgs),
    /// Print a users-file line for a proxy's --users: `NAME:HASH` (argon2id).
    ///
    /// Reads the password from the first line of stdin:
    /// `echo 's3cret' | socketkit passwd alice >> users`.
    Passwd(crate::proxy::PasswdArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The receiver.
    #[arg(value_name = "ADDR", value_parser = parse_endpoint)]
    pub addr: Endpoint,
    /// Files to send; `-` reads standard input (needs --name).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// The name to store standard input under.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Send the secret in FILE to authenticate (only after the server's TLS certificate checked out).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// One JSON summary line per file instead of the b3sum-style line.
    #[arg(long)]
    pub json: bool,
    /// Connect timeout.
    #[arg(long, value_name = "DURATION", default_value = duration_text(ConnectOptions::DEFAULT_TIMEOUT), value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create a CA, a server certificate and client certificates in DIR.
    ///
    /// Writes ca.pem, ca-key.pem, server.pem, server-key.pem and NAME.pem,
    /// NAME-key.pem per client (keys mode 0600), and prints each
    /// certificate's fingerprint. The server then runs with
    /// `--cert server.pem --key server-key.pem --client-ca ca.pem`, clients with
    /// `--ca ca.pem --cert NAME.pem --key NAME-key.pem`.
    Init(PkiInitArgs),
}

#[derive(Debug, Args)]
pub struct PkiInitArgs {
    /// Directory to create the files in (must not already hold a CA).
    pub dir: PathBuf,
    /// DNS name or IP address the server certificate is valid for (repeatable).
    #[arg(long = "name", value_name = "NAME", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()])]
    pub names: Vec<String>,
    /// A client certificate to issue (repeatable).
    #[arg(long = "client", value_name = "NAME")]
    pub clients: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The exec server (default: the local exec socket).
    #[arg(value_name = "ADDR", value_parser = parse_endpoint)]
    pub addr: Option<Endpoint>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
    /// Send the secret in FILE to authenticate (only after the server's TLS certificate checked out).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Allow plain TCP to a loopback address (tests and demos only: nothing is encrypted).
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Send the command as one line for the server's shell (needs a server with --allow-shell).
    #[arg(long)]
    pub shell: bool,
    /// Working directory, relative to the server's.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Set an environment variable for the command (the server must allow NAME).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Do not forward stdin (the command's input is closed at once).
    #[arg(short = 'n', long)]
    pub no_stdin: bool,
    /// Trust on first use, like ssh: remember a tls:// server's certificate
    /// the first time (in $XDG_CONFIG_HOME/socketkit/known_hosts) and require
    /// the same one afterwards.
    #[arg(long, conflicts_with_all = ["ca", "pin", "insecure"])]
    pub tofu: bool,
    /// Connect timeout.
    #[arg(long, value_name = "DURATION", default_value = duration_text(ConnectOptions::DEFAULT_TIMEOUT), value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or("expected NAME=VALUE")?;
    Ok((name.to_owned(), value.to_owned()))
}

/// Verbosity, shared by every command (global: before or after the
/// subcommand).
#[derive(Debug, Args)]
pub struct LogArgs {
    /// More diagnostics on stderr (-v: each connection's open and close; -vv: everything).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Logging")]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Logging"
    )]
    pub quiet: bool,
}

/// `socketkit serve SERVICE`: one subcommand per service.
#[derive(Debug, Args)]
#[command(
    subcommand_value_name = "SERVICE",
    subcommand_help_heading = "Services"
)]
pub struct ServeCommand {
    #[command(subcommand)]
    pub service: Service,
}

/// The services. Adding one takes a variant here (its doc line is its line
/// in `serve --help`), its flag struct (which flattens [`ServeArgs`]), an
/// arm in [`Service::common`] and one in `serve::run`.
#[derive(Debug, Subcommand)]
pub enum Service {
    /// Every byte back (RFC 862); also on UDP and Unix datagrams.
    Echo(ServeArgs),
    /// ASCII letters upper-cased, other bytes unchanged; also on datagrams.
    Upper(ServeArgs),
    /// `Welcome!`, then `Hello, NAME!` per line; `exit` closes.
    Hello(ServeArgs),
    /// Reads and drops everything (RFC 863); also on datagrams.
    Discard(ServeArgs),
    /// The date and time, then close (RFC 867); also on datagrams.
    Daytime(ServeArgs),
    /// Remote commands over the framed protocol (see PROTOCOL.md).
    ///
    /// With no address, serves the local exec socket (owner only). Plain
    /// TCP is refused unless --insecure-plaintext on loopback with a token;
    /// tls:// needs --client-ca or --token-file.
    Exec(Box<ExecServeArgs>),
    /// Receives files sent with `socketkit send` into --dir.
    ///
    /// Off loopback it needs tls:// and --token-file or --client-ca.
    Recv(Box<RecvServeArgs>),
    /// Multi-room chat for nc, telnet and browsers (--web), linked through Redis (--bus).
    Chat(Box<crate::chat::ChatServeArgs>),
    /// inetd: PROG per connection, the socket its stdin and stdout.
    ///
    /// `serve cmd ADDR -- PROG ARGS`. Off loopback it needs --allow CIDR, or
    /// tls:// with --client-ca.
    Cmd(Box<CmdServeArgs>),
    /// Port forwarding: each connection relayed to --to TARGET.
    ///
    /// `serve forward tls://:8443 --self-signed --to tcp://127.0.0.1:8080`
    /// terminates TLS in front of a plaintext server; udp:// forwards
    /// datagrams.
    Forward(Box<crate::forward::ForwardServeArgs>),
    /// SOCKS5 proxy (RFC 1928, 1929): CONNECT and UDP ASSOCIATE.
    ///
    /// Default 127.0.0.1:1080. Off loopback it needs --users FILE or
    /// --allow CIDR (no open proxy by accident).
    Socks5(Box<crate::proxy::ProxyServeArgs>),
    /// HTTP/1.1 forward proxy: CONNECT tunnels and absolute-form requests.
    ///
    /// `curl --proxy http://127.0.0.1:3128 URL`; default 127.0.0.1:3128. Off
    /// loopback it needs --users FILE or --allow CIDR.
    HttpProxy(Box<crate::proxy::ProxyServeArgs>),
}

impl Service {
    /// The flags every service has.
    pub fn common(&self) -> &ServeArgs {
        match self {
            Service::Echo(common)
            | Service::Upper(common)
            | Service::Hello(common)
            | Service::Discard(common)
            | Service::Daytime(common) => common,
            Service::Exec(args) => &args.common,
            Service::Recv(args) => &args.common,
            Service::Chat(args) => &args.common,
            Service::Cmd(args) => &args.common,
            Service::Forward(args) => &args.common,
            Service::Socks5(args) | Service::HttpProxy(args) => &args.common,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    /// One tokio task per connection.
    Tasks,
    /// One OS thread per connection, for blocking handlers.
    Threads,
    /// One connection at a time.
    Sequential,
}

/// The flags every service takes: addresses, limits, mode, TLS, access,
/// metrics. Flattened once into each service's flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Addresses to listen on (several allowed, e.g. TCP and UDP on one port).
    /// Default tcp://127.0.0.1:7007; for exec, the local exec socket.
    #[arg(value_name = "ADDR", value_parser = parse_endpoint)]
    pub addrs: Vec<Endpoint>,
    /// Most connections served at once; more wait in the listen backlog.
    /// With chat --web, the web page's server has as many again (every
    /// connection counts, page or WebSocket, from its accept).
    #[arg(long, value_name = "N", default_value_t = server::ServerConfig::DEFAULT_MAX_CONNECTIONS)]
    pub max_conns: usize,
    /// Close connections idle this long (e.g. 30, 1.5, 500ms, 5m); 0 disables.
    /// The chat's web page pings its WebSockets and closes one that stays
    /// silent this long.
    #[arg(long, value_name = "DURATION", default_value = duration_text(server::ServerConfig::DEFAULT_IDLE_TIMEOUT), value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// On shutdown, how long open connections may finish before being aborted.
    #[arg(long, value_name = "DURATION", default_value = duration_text(server::ServerConfig::DEFAULT_DRAIN_TIMEOUT), value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// How connections are run.
    #[arg(long, value_enum, default_value_t = Mode::Tasks)]
    pub mode: Mode,
    /// Serve exactly one connection or datagram, then exit.
    #[arg(long)]
    pub once: bool,
    /// Longest line line-based services accept, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = server::ServerConfig::DEFAULT_MAX_LINE_LENGTH)]
    pub max_line: usize,
    /// Listen backlog.
    #[arg(long, value_name = "N", default_value_t = socketkit::transport::BindOptions::DEFAULT_BACKLOG)]
    pub backlog: u32,
    /// Set SO_REUSEPORT so several processes can share the port.
    #[arg(long)]
    pub reuse_port: bool,
    /// Runtime threads (default: one per CPU). 1 runs a single event loop,
    /// like a C epoll server: the lowest latency when the machine is shared
    /// (say, with a load generator).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Write logs as JSON lines on stderr.
    #[arg(long)]
    pub json: bool,
    /// Serve Prometheus metrics (connections open/total/refused, bytes
    /// in/out, handler errors) over HTTP at ADDR (tcp:// or unix:; e.g.
    /// 127.0.0.1:9100), under the same --allow/--deny.
    #[arg(long, value_name = "ADDR", value_parser = parse_endpoint)]
    pub metrics: Option<Endpoint>,
    #[command(flatten)]
    pub tls: ServerTlsArgs,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub proxy: crate::proxy_protocol::ProxyProtocolArgs,
}

/// Which IP peers a server admits; for every command that accepts peers.
#[derive(Debug, Args)]
pub struct AccessArgs {
    /// Admit only peers in CIDR (`10.0.0.0/8`, `::1`; a bare address is /32 or /128; repeatable).
    #[arg(long = "allow", value_name = "CIDR", help_heading = "Access")]
    pub allow: Vec<String>,
    /// Refuse peers in CIDR, even if allowed (repeatable).
    #[arg(long = "deny", value_name = "CIDR", help_heading = "Access")]
    pub deny: Vec<String>,
    /// --allow for each line of FILE (`#` starts a comment; repeatable).
    #[arg(long = "allow-file", value_name = "FILE", help_heading = "Access")]
    pub allow_file: Vec<PathBuf>,
    /// --deny for each line of FILE (`#` starts a comment; repeatable).
    #[arg(long = "deny-file", value_name = "FILE", help_heading = "Access")]
    pub deny_file: Vec<PathBuf>,
}

/// `serve cmd`'s flags.
#[derive(Debug, Args)]
pub struct CmdServeArgs {
    #[command(flatten)]
    pub common: ServeArgs,
    /// The program and its arguments, after `--` (argv, no shell).
    #[arg(last = true, value_name = "PROG")]
    pub program: Vec<String>,
    /// Run PROG... as one /bin/sh -c line (needs --allow-shell). An argv of
    /// /bin/sh -c '...' needs neither: the program is the operator's choice.
    #[arg(long, help_heading = "cmd")]
    pub shell: bool,
    /// Allow --shell.
    #[arg(long, help_heading = "cmd")]
    pub allow_shell: bool,
    /// Send the program's stderr to the peer with its stdout (default: the server log).
    #[arg(long, help_heading = "cmd")]
    pub stderr_to_peer: bool,
    /// Wall-clock limit per connection's program (default: none).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "cmd")]
    pub cmd_timeout: Option<Duration>,
    #[command(flatten)]
    pub process: ProcessArgs,
}

/// `serve recv`'s flags.
#[derive(Debug, Args)]
pub struct RecvServeArgs {
    #[command(flatten)]
    pub common: ServeArgs,
    /// Directory to store received files in.
    #[arg(long, value_name = "DIR", required = true, help_heading = "recv")]
    pub dir: PathBuf,
    /// Replace existing files (default: refuse).
    #[arg(long, help_heading = "recv")]
    pub overwrite: bool,
    /// Refuse files larger than BYTES (also from a pipe, whose size is unknown: stopped as soon as more arrived).
    #[arg(long, value_name = "BYTES", help_heading = "recv")]
    pub max_size: Option<u64>,
    /// Accept file names starting with '.' (default: refuse).
    #[arg(long, help_heading = "recv")]
    pub allow_dotfiles: bool,
    /// Remove parts of interrupted transfers untouched this long, at start and then at most every 10 minutes as offers arrive (0: keep).
    #[arg(long, value_name = "DURATION", default_value = duration_text(socketkit::services::recv::RecvPolicy::DEFAULT_PART_TTL), value_parser = parse_duration, help_heading = "recv")]
    pub part_ttl: Duration,
    #[command(flatten)]
    pub auth: ClientAuthArgs,
}

/// How exec and recv authenticate clients.
#[derive(Debug, Args)]
#[command(next_help_heading = "Authentication")]
pub struct ClientAuthArgs {
    /// Admit clients that send the secret in FILE (over TLS; exec also over --insecure-plaintext).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Connections still authenticating, per source address and in total;
    /// more are closed at once.
    #[arg(long, value_name = "PER_SOURCE:TOTAL", default_value_t = StartupLimits::default())]
    pub max_startups: StartupLimits,
}

/// How exec and cmd run and contain processes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Processes")]
pub struct ProcessArgs {
    /// Working directory of every command (default: the server's).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// How every process a command starts is found and killed: a cgroup v2
    /// per command, or a subreaper sweep; auto uses a cgroup where it can.
    #[arg(long, value_enum, default_value_t = ContainmentArg::Auto)]
    pub containment: ContainmentArg,
}

/// `serve exec`'s flags.
#[derive(Debug, Args)]
pub struct ExecServeArgs {
    #[command(flatten)]
    pub common: ServeArgs,
    /// Allow plain TCP on a loopback address (tests and demos only: nothing is encrypted).
    #[arg(long, help_heading = "exec")]
    pub insecure_plaintext: bool,
    /// Let clients run shell lines (/bin/sh -c) and interpreters (sh, python3,
    /// env, ...) as argv. Without --allow-cmd any other program runs, as with ssh.
    #[arg(long, help_heading = "exec")]
    pub allow_shell: bool,
    /// Only argv starting with ENTRY may run (repeatable): 'ls' admits any ls,
    /// 'git status' only git status ...; interpreters only with their arguments.
    #[arg(long = "allow-cmd", value_name = "ENTRY", help_heading = "exec")]
    pub allow_cmd: Vec<String>,
    /// Environment variables clients may set (repeatable; never PATH, LD_* and
    /// other loader or interpreter variables).
    #[arg(long = "allow-env", value_name = "NAME", help_heading = "exec")]
    pub allow_env: Vec<String>,
    /// With mutual TLS: only the client certificates listed in FILE
    /// (`sha256:HEX [ENTRY...]` per line, entries as shell words; listed
    /// entries limit that client).
    #[arg(long, value_name = "FILE", help_heading = "exec")]
    pub authorized_clients: Option<PathBuf>,
    /// Wall-clock limit per command.
    #[arg(long, value_name = "DURATION", default_value = duration_text(socketkit::services::exec::ExecPolicy::DEFAULT_COMMAND_TIMEOUT), value_parser = parse_duration, help_heading = "exec")]
    pub cmd_timeout: Duration,
    /// Kill a command once its output passes BYTES (reported as truncated); 0 = no limit.
    #[arg(long, value_name = "BYTES", default_value_t = 0, help_heading = "exec")]
    pub max_output: u64,
    /// Commands running at once; beyond it clients get a `busy` error.
    #[arg(long, value_name = "N", default_value_t = socketkit::services::exec::ExecPolicy::DEFAULT_MAX_COMMANDS, help_heading = "exec")]
    pub max_commands: usize,
    #[command(flatten)]
    pub auth: ClientAuthArgs,
    #[command(flatten)]
    pub process: ProcessArgs,
}

/// `--containment`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ContainmentArg {
    /// A cgroup v2 per command where the server can create one, else subreaper.
    Auto,
    /// A cgroup v2 per command, or refuse to start.
    Cgroup,
    /// The server as child subreaper, sweeping orphans (no cgroup).
    Subreaper,
}

impl From<ContainmentArg> for socketkit::services::contain::ContainmentMode {
    fn from(arg: ContainmentArg) -> Self {
        use socketkit::services::contain::ContainmentMode;
        match arg {
            ContainmentArg::Auto => ContainmentMode::Auto,
            ContainmentArg::Cgroup => ContainmentMode::Cgroup,
            ContainmentArg::Subreaper => ContainmentMode::Subreaper,
        }
    }
}

/// The server side of TLS, for tls:// addresses.
#[derive(Debug, Args)]
#[group(id = "server_tls")]
pub struct ServerTlsArgs {
    /// Certificate chain (PEM, leaf first) for tls:// addresses.
    #[arg(
        long,
        value_name = "FILE",
        requires = "key",
        conflicts_with = "self_signed",
        help_heading = "TLS"
    )]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert", help_heading = "TLS")]
    pub key: Option<PathBuf>,
    /// Use a self-signed certificate, made on first use and kept (mode 0600) in
    /// $XDG_CONFIG_HOME/socketkit/tls; its fingerprint is printed for clients to --pin.
    #[arg(long, help_heading = "TLS")]
    pub self_signed: bool,
    /// Mutual TLS: require client certificates issued by a CA in FILE.
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub client_ca: Option<PathBuf>,
    /// Deadline for a client to complete the TLS handshake (and to send its
    /// --proxy-protocol header; on the chat's web page, to send a request
    /// head, or the next on a kept-alive connection).
    #[arg(long, value_name = "DURATION", default_value = duration_text(server::ServerConfig::DEFAULT_HANDSHAKE_TIMEOUT), value_parser = parse_duration, help_heading = "TLS")]
    pub handshake_timeout: Duration,
}

/// The client side of TLS, for tls:// addresses.
#[derive(Debug, Args)]
pub struct ClientTlsArgs {
    /// Trust only CAs in FILE (PEM) instead of the system roots.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pin", "insecure"], help_heading = "TLS")]
    pub ca: Option<PathBuf>,
    /// Trust exactly the server certificate with this fingerprint (sha256:HEX).
    #[arg(long, value_name = "FINGERPRINT", value_parser = parse_fingerprint, conflicts_with = "insecure", help_heading = "TLS")]
    pub pin: Option<Fingerprint>,
    /// Do not verify the server at all (encrypted but unauthenticated; prints a warning).
    #[arg(long, help_heading = "TLS")]
    pub insecure: bool,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(
        long = "cert",
        value_name = "FILE",
        requires = "client_key",
        help_heading = "TLS"
    )]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(
        long = "key",
        value_name = "FILE",
        requires = "client_cert",
        help_heading = "TLS"
    )]
    pub client_key: Option<PathBuf>,
    /// Verify the certificate against NAME (and send it as SNI) instead of the address's host.
    #[arg(long, value_name = "NAME", help_heading = "TLS")]
    pub servername: Option<String>,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Where to connect.
    #[arg(value_name = "ADDR", value_parser = parse_endpoint)]
    pub addr: Endpoint,
    /// Connect timeout, covering name resolution and every address tried.
    #[arg(long, value_name = "DURATION", default_value = duration_text(ConnectOptions::DEFAULT_TIMEOUT), value_parser = parse_duration)]
    pub timeout: Duration,
    /// Give up when no data moved either way for this long; 0 disables.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Send line endings as CRLF.
    #[arg(long)]
    pub crlf: bool,
    /// Datagrams: after stdin ends, wait this long for replies still owed.
    #[arg(long, value_name = "DURATION", default_value = duration_text(client::DatagramOptions::DEFAULT_WAIT), value_parser = parse_duration)]
    pub wait: Duration,
    /// The textbook client: send line by line, skip empty lines, `exit` or `bye` ends.
    #[arg(long)]
    pub line_mode: bool,
    /// Bind this local address and/or port first: 127.0.0.2, :40000, 127.0.0.2:40000, [::1]:40000.
    #[arg(short, long, value_name = "ADDR", value_parser = parse_source)]
    pub source: Option<SourceAddress>,
    #[command(flatten)]
    pub family: FamilyArgs,
    #[command(flatten)]
    pub hexdump: HexdumpArgs,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Addresses to listen on (tcp://, tls://, unix:, or udp://, unixgram:);
    /// `9000` is 127.0.0.1:9000, `:9000` every interface. Default
    /// tcp://127.0.0.1:7007. On datagram addresses each datagram is printed
    /// and each stdin line goes to the sender of the latest one.
    #[arg(value_name = "ADDR", value_parser = parse_endpoint)]
    pub addrs: Vec<Endpoint>,
    /// After a connection ends, accept the next (stdin continues into it).
    #[arg(short, long)]
    pub keep_open: bool,
    /// Give up on a connection when no data moved either way for this long; 0 disables.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    #[command(flatten)]
    pub family: FamilyArgs,
    #[command(flatten)]
    pub hexdump: HexdumpArgs,
    #[command(flatten)]
    pub tls: ServerTlsArgs,
    #[command(flatten)]
    pub access: AccessArgs,
}

/// `--proxy URL`, for the clients that reach one destination.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Connect through a proxy: socks5://[USER:PASSWORD@]HOST[:PORT] (this
    /// host resolves the destination), socks5h://… (the proxy resolves it)
    /// or http://… (HTTP CONNECT); port 1080 by default. TLS (tls://) runs
    /// end to end inside the tunnel.
    #[arg(long, value_name = "URL", value_parser = parse_proxy, help_heading = "Proxy")]
    pub proxy: Option<ProxyUrl>,
}

pub(crate) fn parse_proxy(text: &str) -> Result<ProxyUrl, String> {
    text.parse().map_err(|e: socketkit::Error| e.to_string())
}

/// `-x`: dump every chunk each way, as `hexdump -C` would.
#[derive(Debug, Args)]
pub struct HexdumpArgs {
    /// Dump every chunk sent and received to stderr in `hexdump -C` format.
    #[arg(short = 'x', long)]
    pub hexdump: bool,
    /// Write the -x dump to FILE instead of stderr (implies -x).
    #[arg(long, value_name = "FILE")]
    pub hexdump_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The URL: http:// or https://, IPv6 literals in brackets.
    #[arg(value_name = "URL", value_parser = parse_url)]
    pub url: HttpUrl,
    /// Write the body to FILE instead of stdout (`-` is stdout); a progress bar
    /// shows on a terminal.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print the status line and headers (of every response, with -L) before the body.
    #[arg(short, long)]
    pub include: bool,
    /// Send HEAD and print the status line and headers.
    #[arg(short = 'I', long)]
    pub head: bool,
    /// Add a request header (repeatable); replaces a default of that name
    /// (Host, User-Agent, Accept).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<String>,
    /// Follow redirects; Authorization, Cookie and URL credentials are dropped
    /// when the scheme, host or port changes.
    #[arg(short = 'L', long = "location", visible_alias = "follow")]
    pub follow: bool,
    /// Most redirects -L follows.
    #[arg(long, value_name = "N", default_value_t = client::http::GetOptions::DEFAULT_MAX_REDIRECTS)]
    pub max_redirs: usize,
    /// Exit 1 without writing a body when the status is 4xx or 5xx.
    #[arg(short, long)]
    pub fail: bool,
    /// Connect timeout, covering name resolution, TCP and the TLS handshake.
    #[arg(long, value_name = "DURATION", default_value = duration_text(ConnectOptions::DEFAULT_TIMEOUT), value_parser = parse_duration)]
    pub timeout: Duration,
    /// Limit on the whole transfer, redirects included; 0 = none.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_duration)]
    pub max_time: Duration,
    /// The textbook view: the request bytes sent to stderr, the response bytes
    /// received (status line, headers, body with its framing) to stdout.
    #[arg(long, conflicts_with_all = ["output", "include"])]
    pub raw: bool,
    /// Print timings and metadata as one JSON object: on stdout with -o FILE,
    /// otherwise on stderr so it never mixes with the body.
    #[arg(short = 'w', long)]
    pub json: bool,
    /// Use this proxy: socks5://, socks5h:// (the proxy resolves names) or
    /// http:// (http:// URLs in absolute form, https:// through CONNECT),
    /// with USER:PASSWORD@ if needed; '' for none. Default, as curl:
    /// $http_proxy, $https_proxy or $HTTPS_PROXY, then $all_proxy or $ALL_PROXY.
    #[arg(long, value_name = "URL", help_heading = "Proxy")]
    pub proxy: Option<String>,
    /// Hosts reached without the proxy: comma-separated names (subdomains
    /// included), IP addresses, CIDRs, or '*'. Replaces $no_proxy/$NO_PROXY.
    #[arg(long, value_name = "LIST", help_heading = "Proxy")]
    pub noproxy: Option<String>,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
}

fn parse_url(text: &str) -> Result<HttpUrl, String> {
    text.parse().map_err(|e: socketkit::Error| e.to_string())
}

fn parse_header(text: &str) -> Result<String, String> {
    GetOptions::default()
        .add_header(text)
        .map(|()| text.to_owned())
        .map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Targets to check; the port may be a list of ports and ranges:
    /// HOST:22, HOST:20-25, HOST:22,80,443, HOST:1-1024,8080.
    #[arg(value_name = "ADDR", required = true, value_parser = parse_check_targets)]
    pub addrs: Vec<CheckTargets>,
    /// Per-target timeout.
    #[arg(long, value_name = "DURATION", default_value = duration_text(client::CheckOptions::DEFAULT_TIMEOUT), value_parser = parse_duration)]
    pub timeout: Duration,
    /// Most checks in flight at once (capped below the open-file limit).
    #[arg(long, value_name = "N", default_value_t = client::CheckOptions::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Print only open targets (the exit status still says whether all were open).
    #[arg(long)]
    pub open: bool,
    /// One JSON object per target instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub family: FamilyArgs,
}

/// The targets one `check` argument names (several with a port list).
#[derive(Debug, Clone)]
pub struct CheckTargets(pub Vec<Endpoint>);

fn parse_check_targets(text: &str) -> Result<CheckTargets, String> {
    socketkit::client::parse_targets(text)
        .map(CheckTargets)
        .map_err(|e| e.to_string())
}

/// `-4` / `-6`: one address family only.
#[derive(Debug, Args)]
pub struct FamilyArgs {
    /// Use IPv4 addresses only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Use IPv6 addresses only.
    #[arg(short = '6')]
    pub ipv6: bool,
}

impl FamilyArgs {
    pub fn family(&self) -> Option<Family> {
        match (self.ipv4, self.ipv6) {
            (true, _) => Some(Family::V4),
            (_, true) => Some(Family::V6),
            _ => None,
        }
    }
}

pub(crate) fn parse_fingerprint(text: &str) -> Result<Fingerprint, String> {
    text.parse().map_err(|e: socketkit::Error| e.to_string())
}

fn parse_source(text: &str) -> Result<SourceAddress, String> {
    text.parse().map_err(|e: socketkit::Error| e.to_string())
}

pub(crate) fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    text.parse().map_err(|e: socketkit::Error| e.to_string())
}

/// A duration as `--help` shows a default and [`parse_duration`] reads it
/// back (`5m`, `10s`, `1day`): defaults come from the library's constants.
pub(crate) fn duration_text(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// Seconds as a plain number (`30`, `1.5`), or humantime (`500ms`, `5m`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("'{text}': {e}"));
    }
    humantime::parse_duration(text).map_err(|e| format!("'{text}': {e} (try 30, 1.5, 500ms or 5m)"))
}

/// Zero means "no limit" for optional timeouts.
pub fn optional(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}
