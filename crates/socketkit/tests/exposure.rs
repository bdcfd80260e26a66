//! The transport rules of exec, recv and cmd through the public API: what
//! the `socketkit` command refuses, a program built on the library is
//! refused too, before binding (`check_endpoints`, `check_exposure`) and,
//! for exec, on every connection of a server started without the check.

use std::time::Duration;

use socketkit::addr::Endpoint;
use socketkit::client::ExecClient;
use socketkit::server::{AccessList, Rule, Server, ServerConfig};
use socketkit::services::cmd::check_exposure;
use socketkit::services::exec::{
    AuthPolicy, Containment, ContainmentMode, Exec, ExecPolicy, Token,
};
use socketkit::services::exposure::{Guards, UnsafeTransport};
use socketkit::services::recv::RecvPolicy;
use socketkit::transport::{connect, ConnectOptions};
use socketkit::ErrorKind;

mod util;

/// Bound for anything a test waits on: generous, because the machine is
/// shared; a correct run takes milliseconds.
const PATIENCE: Duration = Duration::from_secs(10);

const SECRET: &str = "correct horse battery staple";

fn endpoints(list: &[&str]) -> Vec<Endpoint> {
    list.iter()
        .map(|e| e.parse().expect("a valid endpoint"))
        .collect()
}

fn exec_policy(token: bool, insecure_plaintext: bool) -> ExecPolicy {
    let mut policy = ExecPolicy::default();
    policy.auth.token = token.then(|| Token::new(SECRET));
    policy.insecure_plaintext = insecure_plaintext;
    policy
}

fn auth(token: bool, allow_anonymous: bool) -> AuthPolicy {
    let mut auth = AuthPolicy::default();
    auth.token = token.then(|| Token::new(SECRET));
    auth.allow_anonymous = allow_anonymous;
    auth
}

#[test]
fn exec_with_a_token_over_plain_tcp_on_every_interface_is_refused() {
    let everywhere = endpoints(&["tcp://0.0.0.0:7000"]);
    let refusal = exec_policy(true, false)
        .check_endpoints(&everywhere, Guards::new())
        .unwrap_err();
    assert_eq!(
        refusal,
        UnsafeTransport::Plaintext {
            endpoint: everywhere[0].clone()
        }
    );
    // Allowing plaintext is for loopback only.
    let refusal = exec_policy(true, true)
        .check_endpoints(&everywhere, Guards::new())
        .unwrap_err();
    assert!(
        matches!(refusal, UnsafeTransport::PlaintextOffLoopback { .. }),
        "{refusal:?}"
    );
    // The library's error for it is a configuration error.
    let error = socketkit::Error::from(refusal);
    assert_eq!(error.kind(), ErrorKind::Config);
}

#[test]
fn exec_needs_authentication_on_every_network_transport() {
    let loopback = endpoints(&["tcp://127.0.0.1:7000"]);
    let refusal = exec_policy(false, true)
        .check_endpoints(&loopback, Guards::new())
        .unwrap_err();
    assert!(
        matches!(refusal, UnsafeTransport::PlaintextWithoutToken { .. }),
        "{refusal:?}"
    );
    assert_eq!(
        exec_policy(true, true).check_endpoints(&loopback, Guards::new()),
        Ok(())
    );

    let tls = endpoints(&["tls://[::]:7000"]);
    let refusal = exec_policy(false, false)
        .check_endpoints(&tls, Guards::new())
        .unwrap_err();
    assert!(
        matches!(refusal, UnsafeTransport::Unauthenticated { .. }),
        "{refusal:?}"
    );
    let mutual = Guards::new().client_certificates(true);
    assert_eq!(
        exec_policy(false, false).check_endpoints(&tls, mutual),
        Ok(())
    );

    let mut anonymous = exec_policy(false, false);
    anonymous.auth.allow_anonymous = true;
    let refusal = anonymous.check_endpoints(&tls, mutual).unwrap_err();
    assert!(
        matches!(refusal, UnsafeTransport::Anonymous { .. }),
        "{refusal:?}"
    );
    // A Unix socket proves the peer's uid: nothing else is needed.
    assert_eq!(
        exec_policy(false, false)
            .check_endpoints(&endpoints(&["unix:/tmp/exec.sock"]), Guards::new()),
        Ok(())
    );
}

#[test]
fn recv_off_loopback_needs_tls_and_a_way_to_authenticate() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let open = RecvPolicy::new(dir.path().to_path_buf(), auth(false, true));
    assert_eq!(
        open.check_endpoints(
            &endpoints(&["tcp://127.0.0.1:1", "tcp://[::1]:1"]),
            Guards::new()
        ),
        Ok(())
    );
    let refusal = open
        .check_endpoints(&endpoints(&["tls://0.0.0.0:1"]), Guards::new())
        .unwrap_err();
    assert!(
        matches!(refusal, UnsafeTransport::Anonymous { .. }),
        "{refusal:?}"
    );

    let with_token = RecvPolicy::new(dir.path().to_path_buf(), auth(true, false));
    let refusal = with_token
        .check_endpoints(&endpoints(&["tcp://0.0.0.0:1"]), Guards::new())
        .unwrap_err();
    assert!(
        matches!(refusal, UnsafeTransport::NetworkWithoutTls { .. }),
        "{refusal:?}"
    );
    assert_eq!(
        with_token.check_endpoints(&endpoints(&["tls://0.0.0.0:1"]), Guards::new()),
        Ok(())
    );
}

#[test]
fn cmd_on_every_interface_needs_an_allow_list() {
    let everywhere = endpoints(&["tcp://0.0.0.0:7000"]);
    let open = Guards::of(&ServerConfig::default());
    let refusal = check_exposure(&everywhere, open).unwrap_err();
    assert!(
        matches!(refusal, UnsafeTransport::Unrestricted { .. }),
        "{refusal:?}"
    );
    let mut access = AccessList::new();
    access
        .add(Rule::Allow, "192.0.2.0/24")
        .expect("a valid CIDR");
    let restricted = Guards::of(&ServerConfig::default().access(access));
    assert_eq!(check_exposure(&everywhere, restricted), Ok(()));
}

/// Serves exec on a loopback port under `policy` (skipping the start-time
/// check, as a careless program would) and tries to open a session.
async fn exec_session(policy: ExecPolicy) -> socketkit::Result<String> {
    let server = Server::bind(&endpoints(&["tcp://127.0.0.1:0"]), ServerConfig::default())
        .await
        .expect("bind a loopback port");
    let bound = server.endpoints().next().expect("one endpoint").clone();
    let handle = server.handle();
    let containment = Containment::new(ContainmentMode::Subreaper).expect("a subreaper");
    let task = tokio::spawn(server.serve(Exec::new(policy, containment)));
    let session = tokio::time::timeout(PATIENCE, async {
        let stream = connect(&bound, &ConnectOptions::default()).await?;
        let client = ExecClient::handshake(stream, Some(SECRET.to_owned())).await?;
        Ok(client.identity().to_owned())
    })
    .await
    .expect("the handshake ends in time");
    util::stop(handle, task, PATIENCE).await;
    session
}

#[tokio::test]
async fn exec_refuses_every_plaintext_connection_the_policy_does_not_allow() {
    // The control: plaintext allowed on loopback with a token.
    let identity = exec_session(exec_policy(true, true))
        .await
        .expect("a session over plaintext loopback when allowed");
    assert_eq!(identity, "token");
    // The same server without `insecure_plaintext`: the right token is
    // not enough, the connection is closed before the greeting.
    let refused = exec_session(exec_policy(true, false)).await;
    assert!(refused.is_err(), "{refused:?}");
}
