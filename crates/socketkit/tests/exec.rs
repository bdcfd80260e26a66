//! Remote exec through the public API: an [`Exec`] server bound with
//! `Server::bind` on loopback TCP with a token, driven by the library's
//! [`ExecClient`]: output and exit statuses arrive exact, a refused command
//! is a typed refusal that leaves the connection usable, a wrong token is
//! an authentication error, and a client that never says `HELLO` is cut
//! off by the server's own handshake deadline (on tokio's paused clock).

use std::time::Duration;

use socketkit::client::ExecClient;
use socketkit::protocol::exec::{ErrorMessage, Refusal, Run};
use socketkit::services::exec::{Containment, ContainmentMode, Exec, ExecPolicy, Token};
use socketkit::transport::{self, ConnectOptions};
use socketkit::Endpoint;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

mod util;
use util::PATIENCE;

const TOKEN: &str = "library-test-token";

/// One exec server at a time in this test process: the subreaper
/// containment is process-wide (a server's sweep reaps whatever is left
/// under the process), so two servers in one process would end each
/// other's commands. The CLI runs one server per process; here the tests
/// take turns.
static ONE_SERVER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The server and the directory its commands run in.
struct Running {
    server: util::Running,
    _dir: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

async fn start(configure: impl FnOnce(&mut ExecPolicy)) -> Running {
    let turn = ONE_SERVER.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut policy = ExecPolicy::default();
    policy.auth.token = Some(Token::new(TOKEN));
    policy.cwd = dir.path().to_owned();
    // Plain TCP on loopback with a token: the library refuses it otherwise.
    policy.insecure_plaintext = true;
    configure(&mut policy);
    let containment = Containment::new(ContainmentMode::Subreaper).unwrap();
    let exec = Exec::new(policy, containment);
    Running {
        server: util::start(|server| server.serve(exec)).await,
        _dir: dir,
        _turn: turn,
    }
}

async fn client(endpoint: &Endpoint, token: &str) -> socketkit::Result<ExecClient> {
    let stream = transport::connect(endpoint, &ConnectOptions::default()).await?;
    ExecClient::handshake(stream, Some(token.to_owned())).await
}

/// Runs `argv` without stdin; its stdout, stderr and status.
async fn run(client: &mut ExecClient, argv: &[&str]) -> socketkit::Result<(Vec<u8>, Vec<u8>, u8)> {
    let request = Run {
        argv: Some(argv.iter().map(|a| (*a).to_owned()).collect()),
        ..Run::default()
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let (_keep, mut interrupts) = mpsc::channel(1);
    let finished = tokio::time::timeout(
        PATIENCE,
        client.run(
            request,
            None::<&[u8]>,
            &mut stdout,
            &mut stderr,
            &mut interrupts,
        ),
    )
    .await
    .expect("the command ends in time")?;
    Ok((stdout, stderr, finished.status))
}

#[tokio::test]
async fn commands_run_with_their_output_and_status() {
    let server = start(|_| {}).await;
    let mut client = client(&server.server.endpoint, TOKEN).await.unwrap();
    assert_eq!(client.identity(), "token");
    assert!(!client.server().shell);

    let (stdout, stderr, status) = run(&mut client, &["echo", "hello", "world"]).await.unwrap();
    assert_eq!(stdout, b"hello world\n");
    assert_eq!(stderr, b"");
    assert_eq!(status, 0);

    let (_, _, status) = run(&mut client, &["false"]).await.unwrap();
    assert_eq!(status, 1);

    // The command's stderr stays apart from its stdout; `ls` of a missing
    // name fails with status 2 on GNU and BSD alike.
    let (stdout, stderr, status) = run(&mut client, &["ls", "no-such-file"]).await.unwrap();
    assert_eq!(stdout, b"");
    assert!(!stderr.is_empty());
    assert_eq!(status, 2);
}

#[tokio::test]
async fn a_refused_command_is_a_typed_refusal_and_the_connection_goes_on() {
    let server = start(|_| {}).await;
    let mut client = client(&server.server.endpoint, TOKEN).await.unwrap();

    let error = run(&mut client, &["sh", "-c", "echo should not run"])
        .await
        .unwrap_err();
    let refusal = error
        .find_source::<ErrorMessage>()
        .unwrap_or_else(|| panic!("no refusal in {error:#}"));
    assert_eq!(refusal.kind, Refusal::Denied);
    assert!(refusal.message.contains("interpreter"), "{error:#}");
    assert!(error.is_auth(), "{error:#}");
    assert!(!format!("{error:#}").contains("--"), "no flag in {error:#}");

    let error = run(&mut client, &["no-such-program-anywhere"])
        .await
        .unwrap_err();
    let refusal = error.find_source::<ErrorMessage>().unwrap();
    assert_eq!(refusal.kind, Refusal::Spawn, "{error:#}");

    // Refusals of kind denied and spawn keep the connection.
    let (stdout, _, status) = run(&mut client, &["echo", "still here"]).await.unwrap();
    assert_eq!((stdout.as_slice(), status), (&b"still here\n"[..], 0));
}

#[tokio::test]
async fn a_wrong_token_is_an_authentication_error() {
    let server = start(|_| {}).await;
    let error = client(&server.server.endpoint, "not the token")
        .await
        .unwrap_err();
    assert!(error.is_auth(), "{error:#}");
    let refusal = error.find_source::<ErrorMessage>().unwrap();
    assert_eq!(refusal.kind, Refusal::Auth);
    assert!(
        refusal.retry_after_ms.is_some(),
        "the refusal says when to try again: {refusal:?}"
    );
}

/// The handshake deadline is the server's own timer: on the paused clock
/// the silent client is cut off exactly when it passes, whatever the load.
#[tokio::test(start_paused = true)]
async fn a_client_that_never_says_hello_is_cut_off_at_the_handshake_deadline() {
    let server = start(|policy| policy.handshake_timeout = Duration::from_secs(5)).await;
    let mut silent = tokio::net::TcpStream::connect(server.server.addr())
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut seen = Vec::new();
    // The server's HELLO, then nothing until the deadline closes the
    // connection (EOF); the paused clock jumps to it once all is idle.
    silent.read_to_end(&mut seen).await.unwrap();
    let waited = started.elapsed();
    assert!(seen.len() > 5, "the greeting arrived: {seen:?}");
    // The paused clock makes this exact: not before the deadline, and not
    // at some later timer (the idle timeout) either.
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "closed at the deadline, not after {waited:?}"
    );
}
