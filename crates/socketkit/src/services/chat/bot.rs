//! The textbook chat robot, written as an ordinary member on the public
//! [`Chat::join`] API — the example to copy for any program that takes part
//! in the chat.
//!
//! It sits in `#lobby`, greets newcomers and answers `!help`, `!time`,
//! `!who` and `!roll NdM`. Like any member it must keep reading or be
//! dropped as too slow, and like any member it is rate limited: so it never
//! waits on its own rate limit while events pile up. Replies wait in a short
//! queue and are sent as the limit allows; what does not fit is dropped
//! (a flood of `!roll` goes partly unanswered, the bot stays).

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::time::SystemTime;

use tokio::time::Instant;

use super::{Chat, EventKind, Flow, Participant};
use crate::server::ServerHandle;

/// The built-in bot. `Bot::new("bot").run(chat, handle)` runs it until
/// shutdown.
#[derive(Debug, Clone)]
pub struct Bot {
    nick: String,
}

/// Replies waiting for the rate limit: two seconds' worth at the default
/// rate. Commands past it are not answered.
const PENDING_REPLIES: usize = 20;

const HELP: &str = "I answer !help, !time, !who and !roll NdM (dice, e.g. !roll 2d6)";

impl Bot {
    /// A bot that will ask for `nick` (a guest name if it is taken).
    pub fn new(nick: impl Into<String>) -> Bot {
        Bot { nick: nick.into() }
    }

    /// Joins `chat` and answers until `shutdown`, or until it is dropped
    /// for being too slow.
    pub async fn run(self, chat: Chat, shutdown: ServerHandle) {
        let (mut me, mut inbox) = chat.join(Some(&self.nick), false);
        let mut dice = Dice::seeded();
        let mut asked_who = false;
        let mut replies = VecDeque::new();
        let mut resume_at = None;
        let mut unanswered: u64 = 0;
        loop {
            let events = tokio::select! {
                biased;
                () = shutdown.shutdown_requested() => return me.shutdown(),
                // Before reading: a flood keeps the inbox ready, and the
                // replies must still go out as the limit allows.
                () = wait_until(resume_at), if !replies.is_empty() => {
                    resume_at = say(&mut me, &mut replies);
                    continue;
                }
                events = inbox.recv() => match events {
                    Ok(events) => events,
                    Err(_too_slow) => return me.too_slow(),
                },
            };
            for event in events {
                match event.kind() {
                    EventKind::Joined { nick, .. } => {
                        replies.push_back(format!("Welcome, {nick}! {HELP}."));
                    }
                    EventKind::Members { nicks, room } if asked_who => {
                        asked_who = false;
                        replies.push_back(format!("In #{room}: {}", nicks.join(", ")));
                    }
                    EventKind::Message {
                        nick,
                        text,
                        action: false,
                        ..
                    } => match answer(nick, text, &mut dice) {
                        Some(Answer::Say(reply)) => replies.push_back(reply),
                        Some(Answer::Who) => {
                            asked_who = true;
                            replies.push_back("/who".into());
                        }
                        None => {}
                    },
                    _ => {}
                }
            }
            if replies.len() > PENDING_REPLIES {
                let dropped = replies.len() - PENDING_REPLIES;
                replies.truncate(PENDING_REPLIES);
                unanswered = unanswered.saturating_add(dropped as u64);
                tracing::debug!(
                    unanswered,
                    "bot: too many commands at once; some go unanswered"
                );
            }
        }
    }
}

/// Sends queued replies until the rate limit says wait; returns until when.
fn say(me: &mut Participant, replies: &mut VecDeque<String>) -> Option<Instant> {
    while let Some(line) = replies.pop_front() {
        if let Flow::PauseUntil(at) = me.submit(line.as_bytes()) {
            return Some(at);
        }
    }
    None
}

async fn wait_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

enum Answer {
    Say(String),
    Who,
}

fn answer(nick: &str, text: &str, dice: &mut Dice) -> Option<Answer> {
    let mut words = text.split_whitespace();
    let reply = match words.next()? {
        "!help" => HELP.to_owned(),
        "!time" => format!(
            "{nick}: it is {}",
            httpdate::fmt_http_date(SystemTime::now())
        ),
        "!who" => return Some(Answer::Who),
        "!roll" => roll(nick, words.next().unwrap_or("1d6"), dice),
        _ => return None,
    };
    Some(Answer::Say(reply))
}

/// `NdM`: N dice (1–100) of M sides (2–1000).
fn roll(nick: &str, spec: &str, dice: &mut Dice) -> String {
    let parsed = spec
        .to_ascii_lowercase()
        .split_once('d')
        .and_then(|(n, m)| Some((n.parse::<u32>().ok()?, m.parse::<u32>().ok()?)));
    let Some((count @ 1..=100, sides @ 2..=1000)) = parsed else {
        return format!("{nick}: roll like !roll 2d6 (1-100 dice of 2-1000 sides)");
    };
    let rolls: Vec<u32> = (0..count).map(|_| dice.roll(sides)).collect();
    let total: u32 = rolls.iter().sum();
    if count == 1 {
        return format!("{nick} rolls {spec}: {total}");
    }
    let shown: Vec<String> = rolls.iter().map(u32::to_string).collect();
    format!("{nick} rolls {spec}: {} = {total}", shown.join(" + "))
}

/// A small xorshift generator: dice need no cryptography, only variety.
struct Dice(u64);

impl Dice {
    fn seeded() -> Dice {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Dice(seed | 1)
    }

    fn roll(&mut self, sides: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        u32::try_from(self.0 % u64::from(sides)).unwrap_or(0) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolls_stay_in_range_and_add_up() {
        let mut dice = Dice(42);
        for _ in 0..1000 {
            assert!((1..=6).contains(&dice.roll(6)));
        }
        let reply = roll("ann", "3d6", &mut dice);
        let (rolls, total) = reply["ann rolls 3d6: ".len()..].split_once(" = ").unwrap();
        let sum: u32 = rolls.split(" + ").map(|r| r.parse::<u32>().unwrap()).sum();
        assert_eq!(sum, total.parse::<u32>().unwrap());
        assert!(roll("ann", "0d6", &mut dice).contains("roll like"));
        assert!(roll("ann", "2x", &mut dice).contains("roll like"));
    }
}
