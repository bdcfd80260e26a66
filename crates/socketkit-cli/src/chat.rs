//! `socketkit serve chat`: the chat's own flags, and starting its
//! companions (web page, Redis link, bot) beside the server.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use socketkit::server::{Handlers, ServerHandle};
use socketkit::services::chat::{
    self, Bot, Bus, BusSecret, Chat, ChatConfig, RateLimit, WebConfig,
};
use socketkit::Endpoint;

use crate::args::{duration_text, parse_duration, parse_endpoint, ServeArgs};

/// `serve chat`'s flags: the common ones and the chat's.
#[derive(Debug, Args)]
pub struct ChatServeArgs {
    #[command(flatten)]
    pub common: ServeArgs,
    #[command(flatten)]
    pub chat: ChatArgs,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Chat options")]
pub struct ChatArgs {
    /// Messages of a room replayed to whoever joins it.
    #[arg(long, value_name = "N", default_value_t = chat::ChatConfig::DEFAULT_HISTORY)]
    pub history: usize,
    /// Longest chat line in bytes; longer lines are refused with an error.
    #[arg(long, value_name = "BYTES", default_value_t = chat::ChatConfig::DEFAULT_MAX_MESSAGE)]
    pub max_message: usize,
    /// Messages a second a client may send (bursts of twice that); 0 disables.
    #[arg(long, value_name = "N", default_value_t = chat::ChatConfig::DEFAULT_RATE.per_second)]
    pub rate: f64,
    /// How far a client may fall behind its room, in messages; one further behind is dropped.
    #[arg(long, value_name = "N", default_value_t = chat::ChatConfig::DEFAULT_QUEUE_MESSAGES)]
    pub queue: usize,
    /// How far a client may fall behind its room, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = chat::ChatConfig::DEFAULT_QUEUE_BYTES)]
    pub queue_bytes: usize,
    /// Drop a client when one write to it takes longer than this.
    #[arg(long, value_name = "DURATION", default_value = duration_text(chat::ChatConfig::DEFAULT_WRITE_TIMEOUT), value_parser = parse_duration)]
    pub write_timeout: Duration,
    /// Add the bot: greets newcomers, answers !help !time !who !roll NdM.
    #[arg(long)]
    pub bot: bool,
    /// Also serve the web page and its WebSocket here (e.g. 127.0.0.1:8080;
    /// tls://... with --cert/--key or --self-signed), on a server of its own
    /// with the same --max-conns, --idle-timeout and --handshake-timeout.
    #[arg(long, value_name = "ADDR", value_parser = parse_endpoint)]
    pub web: Option<Endpoint>,
    /// Also answer the web page under this host name (NAME or NAME:PORT),
    /// besides the addresses bound and localhost; repeatable.
    #[arg(long = "web-host", value_name = "HOST", requires = "web")]
    pub web_hosts: Vec<String>,
    /// Also accept WebSockets from pages of this origin (e.g.
    /// https://chat.example.com), besides the page's own; repeatable.
    #[arg(long = "web-origin", value_name = "ORIGIN", requires = "web")]
    pub web_origins: Vec<String>,
    /// Link with other chat servers through Redis: redis://[USER:PASS@]HOST:PORT,
    /// or rediss://... for TLS.
    #[arg(long, value_name = "URL")]
    pub bus: Option<String>,
    /// Sign every bus message with the secret in FILE (HMAC-SHA256) and drop
    /// unsigned, forged, stale or replayed ones. Every linked server needs the same secret.
    #[arg(long, value_name = "FILE", requires = "bus")]
    pub bus_secret_file: Option<PathBuf>,
    /// For a rediss:// bus: trust only the CAs in FILE (PEM) instead of the system roots.
    #[arg(long, value_name = "FILE", requires = "bus")]
    pub bus_ca: Option<PathBuf>,
}

fn config(args: &ChatArgs) -> ChatConfig {
    let rate = (args.rate > 0.0).then(|| RateLimit::per_second(args.rate));
    ChatConfig::default()
        .history(args.history)
        .max_message(args.max_message)
        .rate_limit(rate)
        .queue_limits(args.queue, args.queue_bytes)
        .write_timeout(args.write_timeout)
}

/// The web page's server: the chat server's limits and timeouts, TLS for a
/// tls:// address, and the extra names and origins.
fn web_config(args: &ChatServeArgs, endpoint: &Endpoint) -> anyhow::Result<WebConfig> {
    let common = &args.common;
    let tls = crate::tls::server(&common.tls, std::slice::from_ref(endpoint), false)?;
    let access = crate::serve::access_list(&common.access)?;
    let mut config = WebConfig::default().server(crate::serve::config(common, tls, access));
    for host in &args.chat.web_hosts {
        config = config.allow_host(host).context("bad --web-host")?;
    }
    for origin in &args.chat.web_origins {
        config = config.allow_origin(origin).context("bad --web-origin")?;
    }
    Ok(config)
}

/// The bus from its flags: URL, CA and secret.
fn bus(url: &str, args: &ChatArgs) -> anyhow::Result<Bus> {
    let mut bus = Bus::new(url)?;
    if let Some(ca) = &args.bus_ca {
        bus = bus.ca_file(ca)?;
    }
    if let Some(secret) = crate::token::read(args.bus_secret_file.as_deref())? {
        bus = bus.secret(BusSecret::new(secret.as_bytes())?);
    }
    Ok(bus)
}

pub async fn run(args: ChatServeArgs) -> anyhow::Result<()> {
    let chat = Chat::new(config(&args.chat));
    let handle = ServerHandle::default();
    let mut also_listening = Vec::new();
    let web = match &args.chat.web {
        Some(endpoint) => {
            let web = chat
                .bind_web(endpoint, web_config(&args, endpoint)?)
                .await?;
            also_listening.extend(web.urls());
            Some(web)
        }
        None => None,
    };
    if let Some(url) = &args.chat.bus {
        let bus = bus(url, &args.chat).context("cannot link the chat to its bus")?;
        chat.link(bus, handle.clone())
            .context("cannot link the chat to its bus")?;
    }
    if args.chat.bot {
        tokio::spawn(Bot::new("bot").run(chat.clone(), handle.clone()));
    }
    let web = web.map(|web| tokio::spawn(web.serve(handle.clone())));
    let served = crate::serve::Serve::new("chat", args.common)
        .with_handle(handle.clone())
        .also_listening(also_listening)
        .run(Handlers::stream(chat))
        .await;
    // The server may also stop on a bind error: take the companions down too.
    // The web page's server drains under its own deadline, like the chat's.
    handle.shutdown();
    if let Some(web) = web {
        if let Ok(Err(error)) = web.await {
            tracing::warn!(error = %error, "the chat web page stopped with an error");
        }
    }
    served
}
