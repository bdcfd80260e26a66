//! The shared state of one chat server: who is here, which rooms exist,
//! their history, and what is known of members on linked servers.
//!
//! Every change happens under one lock. An event for a whole room is one
//! append to the room's [`RoomLog`]; an event for one member is a push onto
//! its bounded [`Outbox`]; neither ever waits. So the hub never blocks on a
//! client, and since events are appended in the order the lock is taken,
//! every member sees one sender's messages in the order they were sent.
//! Members on other servers are known from the bus ([`Wire`] events and
//! presence snapshots); they are never waited on either.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use tokio::sync::mpsc;

use super::bus::Wire;
use super::config::ChatConfig;
use super::event::{Event, EventKind, RoomInfo};
use super::outbox::Outbox;
use super::roomlog::{PendingWake, RoomLog};
use super::text::{check_nick, check_room, fold, ChatRefusal};

/// The room everyone starts in.
pub(crate) const DEFAULT_ROOM: &str = "lobby";

/// The author of room events that every member gets, its own included.
const NOBODY: u64 = 0;

/// Most members known on linked servers, all nodes together: what the bus
/// can make this server remember (each node is also capped by the bus).
pub(crate) const MAX_REMOTE_MEMBERS: usize = 64 * 1024;

/// One connected member as the hub sees it: an id and what it is still
/// to be told.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) id: u64,
    pub(crate) outbox: Outbox,
}

impl Member {
    pub(crate) fn tell(&self, kind: EventKind) {
        self.outbox.push(&Arc::new(Event::new(kind)));
    }
}

#[derive(Debug)]
pub(crate) struct Hub {
    config: ChatConfig,
    state: Mutex<State>,
    next_id: AtomicU64,
    guests: AtomicU64,
    /// Outgoing federation events, when a bus is attached.
    bus: OnceLock<mpsc::Sender<Wire>>,
}

#[derive(Debug, Default)]
struct State {
    seats: HashMap<u64, Seat>,
    /// Folded nickname → member id.
    nicks: HashMap<String, u64>,
    /// Folded room name → room.
    rooms: HashMap<String, Room>,
    /// Node id → folded nickname → who and where, on linked servers.
    remote: HashMap<String, HashMap<String, Presence>>,
    /// Whether the bus is up (false also when there is no bus).
    link_up: bool,
    /// Bumped on every room use, to forget the least recently used.
    clock: u64,
}

#[derive(Debug)]
struct Seat {
    nick: String,
    /// Folded name of the member's room.
    room: String,
    member: Arc<Member>,
}

/// A member of a linked server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Presence {
    pub(crate) nick: String,
    pub(crate) room: String,
}

#[derive(Debug)]
struct Room {
    name: String,
    members: BTreeMap<u64, Arc<Member>>,
    /// Everything said or announced in the room, read by its members.
    log: Arc<RoomLog>,
    history: VecDeque<Arc<Event>>,
    last_used: u64,
    /// Made for a linked server's message and never entered here: such
    /// rooms take only free space (at most a quarter of `max_rooms`) and
    /// are forgotten first, so the bus cannot push local rooms out.
    from_bus: bool,
}

impl Hub {
    pub(crate) fn new(config: ChatConfig) -> Hub {
        Hub {
            config,
            state: Mutex::default(),
            next_id: AtomicU64::new(1),
            guests: AtomicU64::new(1),
            bus: OnceLock::new(),
        }
    }

    pub(crate) fn config(&self) -> &ChatConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Attaches the federation bus; false if one is attached already.
    pub(crate) fn attach_bus(&self, sender: mpsc::Sender<Wire>) -> bool {
        self.bus.set(sender).is_ok()
    }

    /// Sends `wire` to the other servers if the link is up. Called under
    /// the lock so the bus sees events in hub order; never waits (a full
    /// bus queue drops the event, the link being too slow to matter).
    fn federate(&self, state: &State, wire: Wire) {
        if let (true, Some(bus)) = (state.link_up, self.bus.get()) {
            if bus.try_send(wire).is_err() {
                tracing::debug!("federation queue full; event not forwarded");
            }
        }
    }

    /// Admits a member: the requested nickname if it is valid and free,
    /// otherwise a guest name (and the reason); then the default room.
    pub(crate) fn join(&self, requested: Option<&str>, echo_own: bool) -> Arc<Member> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // The web page draws its own lines from its own messages; terminal
        // users already see what they typed.
        let outbox = Outbox::new(
            id,
            echo_own,
            self.config.queue_messages,
            self.config.queue_bytes,
        );
        let member = Arc::new(Member { id, outbox });
        let mut state = self.lock();
        let refusal = match requested.filter(|n| !n.is_empty()) {
            Some(nick) => check_nick(nick)
                .and_then(|()| Self::check_free(&state, nick))
                .err(),
            None => None,
        };
        let nick = match (requested, &refusal) {
            (Some(nick), None) if !nick.is_empty() => nick.to_owned(),
            _ => self.guest_name(&state),
        };
        state.nicks.insert(fold(&nick), member.id);
        member.tell(EventKind::Welcome { nick: nick.clone() });
        if let Some(why) = refusal {
            member.tell(EventKind::Error {
                text: format!("{why}; you are {nick} (change it with /nick)"),
            });
        }
        let room = fold(DEFAULT_ROOM);
        state.seats.insert(
            member.id,
            Seat {
                nick,
                room: room.clone(),
                member: member.clone(),
            },
        );
        self.enter(&mut state, member.id, &room, DEFAULT_ROOM);
        member
    }

    fn check_free(state: &State, nick: &str) -> Result<(), ChatRefusal> {
        let key = fold(nick);
        let remote = state.remote.values().any(|n| n.contains_key(&key));
        if state.nicks.contains_key(&key) || remote {
            return Err(ChatRefusal::NickTaken(nick.to_owned()));
        }
        Ok(())
    }

    fn guest_name(&self, state: &State) -> String {
        loop {
            let nick = format!("guest-{}", self.guests.fetch_add(1, Ordering::Relaxed));
            if Self::check_free(state, &nick).is_ok() {
                return nick;
            }
        }
    }

    /// Puts a seated member into a room: announce, then history and who.
    fn enter(&self, state: &mut State, id: u64, key: &str, name: &str) {
        let Some(seat) = state.seats.get_mut(&id) else {
            return;
        };
        seat.room = key.to_owned();
        let (nick, member) = (seat.nick.clone(), seat.member.clone());
        let clock = bump(&mut state.clock);
        let Some(room) = room_entry(state, &self.config, key, name, false) else {
            return;
        };
        room.last_used = clock;
        room.from_bus = false;
        let joined = Event::new(EventKind::Joined {
            room: room.name.clone(),
            nick: nick.clone(),
        });
        room.announce(id, Arc::new(joined));
        member.outbox.move_to(Some(room.log.clone()));
        room.members.insert(id, member.clone());
        let room_name = room.name.clone();
        member.tell(EventKind::Entered {
            room: room_name.clone(),
        });
        for old in &room.history {
            member.outbox.push(old);
        }
        member.tell(EventKind::Members {
            nicks: who(state, key),
            room: room_name.clone(),
        });
        self.federate(
            state,
            Wire::Joined {
                room: room_name,
                nick,
            },
        );
    }

    /// Takes a member out of its room, telling the room (unless `quiet`).
    fn exit(&self, state: &mut State, id: u64, reason: Option<String>, quiet: bool) {
        let Some(seat) = state.seats.get(&id) else {
            return;
        };
        let (key, nick) = (seat.room.clone(), seat.nick.clone());
        let Some(room) = state.rooms.get_mut(&key) else {
            return;
        };
        if let Some(member) = room.members.remove(&id) {
            member.outbox.move_to(None);
        }
        let name = room.name.clone();
        if !quiet {
            let left = Event::new(EventKind::Left {
                room: name.clone(),
                nick: nick.clone(),
                reason: reason.clone(),
            });
            room.announce(id, Arc::new(left));
        }
        if room.members.is_empty() {
            room.log.trim_to(room.log.head());
        }
        self.federate(
            state,
            Wire::Left {
                room: name,
                nick,
                reason,
            },
        );
    }

    /// Removes a member from the server. `quiet` skips the local
    /// announcement (at shutdown everyone is leaving at once).
    pub(crate) fn leave(&self, id: u64, reason: Option<String>, quiet: bool) {
        let mut state = self.lock();
        self.exit(&mut state, id, reason, quiet);
        if let Some(seat) = state.seats.remove(&id) {
            state.nicks.remove(&fold(&seat.nick));
        }
    }

    /// A line said in the member's room. The room's readers are woken
    /// through `wake`, which the caller flushes once it has said all it has
    /// in hand, so that one wake-up carries many lines.
    pub(crate) fn say(&self, id: u64, text: &str, action: bool, wake: &mut PendingWake) {
        let mut state = self.lock();
        let clock = bump(&mut state.clock);
        let State { seats, rooms, .. } = &mut *state;
        let Some(seat) = seats.get(&id) else {
            return;
        };
        let Some(room) = rooms.get_mut(&seat.room) else {
            return;
        };
        room.last_used = clock;
        let event = Arc::new(Event::new(EventKind::message(
            &room.name, &seat.nick, text, action,
        )));
        room.append(id, event.clone());
        remember(room, event, self.config.history);
        wake.add(&room.log);
        if self.bus.get().is_some() {
            let wire = Wire::Message {
                room: room.name.clone(),
                nick: seat.nick.clone(),
                text: text.to_owned(),
                action,
            };
            self.federate(&state, wire);
        }
    }

    /// `/join`: leave the current room for `requested`.
    pub(crate) fn switch_room(&self, id: u64, requested: &str) -> Result<(), ChatRefusal> {
        let name = check_room(requested)?;
        let key = fold(name);
        let mut state = self.lock();
        let current = state.seats.get(&id).map(|s| s.room.clone());
        if current.as_deref() == Some(key.as_str()) {
            return Err(ChatRefusal::AlreadyIn(name.to_owned()));
        }
        if !state.rooms.contains_key(&key) && !make_room_space(&mut state, &self.config) {
            return Err(ChatRefusal::TooManyRooms);
        }
        self.exit(&mut state, id, None, false);
        self.enter(&mut state, id, &key, name);
        Ok(())
    }

    /// `/nick`: a new unique nickname, announced to the member's room.
    pub(crate) fn rename(&self, id: u64, new: &str) -> Result<(), ChatRefusal> {
        check_nick(new)?;
        let mut state = self.lock();
        let Some(seat) = state.seats.get(&id) else {
            return Ok(());
        };
        let old = seat.nick.clone();
        if fold(&old) != fold(new) {
            Self::check_free(&state, new)?;
        }
        state.nicks.remove(&fold(&old));
        state.nicks.insert(fold(new), id);
        let Some(seat) = state.seats.get_mut(&id) else {
            return Ok(());
        };
        seat.nick = new.to_owned();
        let key = seat.room.clone();
        let room = state.rooms.get(&key).map(|r| r.name.clone());
        let renamed = Event::new(EventKind::Renamed {
            room: room.clone().unwrap_or_default(),
            old: old.clone(),
            new: new.to_owned(),
        });
        if let Some(room) = state.rooms.get_mut(&key) {
            room.announce(NOBODY, Arc::new(renamed));
        }
        if let Some(room) = room {
            let wire = Wire::Renamed {
                room,
                old,
                new: new.to_owned(),
            };
            self.federate(&state, wire);
        }
        Ok(())
    }

    /// `/msg`: a private message to a member here or on a linked server.
    pub(crate) fn private(&self, id: u64, to: &str, text: &str) -> Result<(), ChatRefusal> {
        let state = self.lock();
        let Some(seat) = state.seats.get(&id) else {
            return Ok(());
        };
        let key = fold(to);
        let local = state.nicks.get(&key).and_then(|id| state.seats.get(id));
        let remote = state.remote.values().find_map(|nicks| nicks.get(&key));
        let to = match (local, remote) {
            (Some(target), _) => {
                target.member.tell(EventKind::Private {
                    from: seat.nick.clone(),
                    to: target.nick.clone(),
                    text: text.to_owned(),
                    outgoing: false,
                });
                target.nick.clone()
            }
            (None, Some(presence)) => {
                let wire = Wire::Private {
                    from: seat.nick.clone(),
                    to: presence.nick.clone(),
                    text: text.to_owned(),
                };
                self.federate(&state, wire);
                presence.nick.clone()
            }
            (None, None) => return Err(ChatRefusal::NoSuchNick(to.to_owned())),
        };
        seat.member.tell(EventKind::Private {
            from: seat.nick.clone(),
            to,
            text: text.to_owned(),
            outgoing: true,
        });
        Ok(())
    }

    /// `/who`: who is in the member's room, here and on linked servers.
    pub(crate) fn who(&self, id: u64) {
        let state = self.lock();
        if let Some(seat) = state.seats.get(&id) {
            let room = state
                .rooms
                .get(&seat.room)
                .map_or_else(|| seat.room.clone(), |r| r.name.clone());
            seat.member.tell(EventKind::Members {
                nicks: who(&state, &seat.room),
                room,
            });
        }
    }

    /// `/rooms`: every room with members, here and on linked servers.
    pub(crate) fn rooms(&self, id: u64) {
        let state = self.lock();
        let mut counts: BTreeMap<String, RoomInfo> = BTreeMap::new();
        let mut count = |key: String, name: &str, members: usize| {
            counts
                .entry(key)
                .or_insert_with(|| RoomInfo {
                    name: name.to_owned(),
                    members: 0,
                })
                .members += members;
        };
        for (key, room) in &state.rooms {
            count(key.clone(), &room.name, room.members.len());
        }
        for presence in state.remote.values().flat_map(HashMap::values) {
            count(fold(&presence.room), &presence.room, 1);
        }
        let rooms = counts.into_values().filter(|r| r.members > 0).collect();
        if let Some(seat) = state.seats.get(&id) {
            seat.member.tell(EventKind::Rooms { rooms });
        }
    }

    /// The member's nickname.
    pub(crate) fn nick(&self, id: u64) -> Option<String> {
        self.lock().seats.get(&id).map(|s| s.nick.clone())
    }

    /// Tells every local member something.
    fn tell_everyone(state: &State, kind: EventKind) {
        let event = Arc::new(Event::new(kind));
        for seat in state.seats.values() {
            seat.member.outbox.push(&event);
        }
    }

    /// The bus went up or down. Going down forgets remote members (they
    /// cannot be reached); coming up, the bus refreshes them.
    pub(crate) fn set_link(&self, up: bool) {
        let mut state = self.lock();
        if state.link_up == up {
            return;
        }
        state.link_up = up;
        if !up {
            state.remote.clear();
        }
        Self::tell_everyone(&state, EventKind::Link { up });
    }

    /// Local members and their rooms, for this server's presence key.
    pub(crate) fn local_presence(&self) -> Vec<Presence> {
        let state = self.lock();
        state
            .seats
            .values()
            .map(|seat| Presence {
                nick: seat.nick.clone(),
                room: state
                    .rooms
                    .get(&seat.room)
                    .map_or_else(|| seat.room.clone(), |r| r.name.clone()),
            })
            .collect()
    }

    /// Replaces what is known of linked servers' members (their presence
    /// snapshots, checked by the bus), keeping at most
    /// [`MAX_REMOTE_MEMBERS`]. This is the truth that `joined`/`left`
    /// events only anticipate: an event's claim lasts until the next
    /// snapshot at most.
    pub(crate) fn set_remote_presence(&self, nodes: HashMap<String, Vec<Presence>>) {
        let mut budget = MAX_REMOTE_MEMBERS;
        let remote = nodes
            .into_iter()
            .map(|(node, members)| {
                let take = members.len().min(budget);
                budget -= take;
                let members = members
                    .into_iter()
                    .take(take)
                    .map(|p| (fold(&p.nick), p))
                    .collect();
                (node, members)
            })
            .collect();
        self.lock().remote = remote;
    }

    /// Records a linked server's member, if the bounds allow: at most
    /// [`MAX_NODE_MEMBERS`](super::bus::MAX_NODE_MEMBERS) per node,
    /// [`MAX_NODES`](super::bus::MAX_NODES) nodes and
    /// [`MAX_REMOTE_MEMBERS`] in all.
    fn remember_remote(state: &mut State, node: &str, presence: Presence) {
        let total: usize = state.remote.values().map(HashMap::len).sum();
        let known_node = state.remote.contains_key(node);
        if total >= MAX_REMOTE_MEMBERS
            || (!known_node && state.remote.len() >= super::bus::MAX_NODES)
        {
            return;
        }
        let members = state.remote.entry(node.to_owned()).or_default();
        if members.len() < super::bus::MAX_NODE_MEMBERS {
            members.insert(fold(&presence.nick), presence);
        }
    }

    /// Applies an event from another server to local members. The bus has
    /// checked every field by the local rules; what depends on this
    /// server's limits (line length) is checked here.
    pub(crate) fn apply_remote(&self, node: &str, wire: Wire) {
        let max = self.config.max_message;
        let too_long = match &wire {
            Wire::Message { text, .. } | Wire::Private { text, .. } => text.len() > max,
            Wire::Left {
                reason: Some(reason),
                ..
            } => reason.len() > max,
            _ => false,
        };
        if too_long {
            tracing::debug!("dropped a linked server's line longer than the message limit");
            return;
        }
        let mut state = self.lock();
        match wire {
            Wire::Message {
                room,
                nick,
                text,
                action,
            } => {
                let event = Event::new(EventKind::message(&room, &nick, &text, action));
                self.deliver_to_room(&mut state, &room, event, true);
            }
            Wire::Private { from, to, text } => {
                if let Some(seat) = state
                    .nicks
                    .get(&fold(&to))
                    .and_then(|id| state.seats.get(id))
                {
                    seat.member.tell(EventKind::Private {
                        from,
                        to: seat.nick.clone(),
                        text,
                        outgoing: false,
                    });
                }
            }
            Wire::Joined { room, nick } => {
                let presence = Presence {
                    nick: nick.clone(),
                    room: room.clone(),
                };
                Self::remember_remote(&mut state, node, presence);
                let event = Event::new(EventKind::Joined {
                    room: room.clone(),
                    nick,
                });
                self.deliver_to_room(&mut state, &room, event, false);
            }
            Wire::Left { room, nick, reason } => {
                if let Some(nodes) = state.remote.get_mut(node) {
                    nodes.remove(&fold(&nick));
                }
                let event = Event::new(EventKind::Left {
                    room: room.clone(),
                    nick,
                    reason,
                });
                self.deliver_to_room(&mut state, &room, event, false);
            }
            Wire::Renamed { room, old, new } => {
                if let Some(nodes) = state.remote.get_mut(node) {
                    nodes.remove(&fold(&old));
                    let presence = Presence {
                        nick: new.clone(),
                        room: room.clone(),
                    };
                    nodes.insert(fold(&new), presence);
                }
                let event = Event::new(EventKind::Renamed {
                    room: room.clone(),
                    old,
                    new,
                });
                self.deliver_to_room(&mut state, &room, event, false);
            }
            // Presence arrives through `set_remote_presence`.
            Wire::Presence { .. } => {}
        }
    }

    /// Pushes a remote event to a room's local members; messages also go
    /// into its history (creating the room if there is space).
    fn deliver_to_room(&self, state: &mut State, name: &str, event: Event, keep: bool) {
        let Ok(name) = check_room(name) else {
            return;
        };
        let key = fold(name);
        let clock = bump(&mut state.clock);
        let room = match (state.rooms.contains_key(&key), keep) {
            (true, _) => state.rooms.get_mut(&key),
            (false, true) => room_entry(state, &self.config, &key, name, true),
            (false, false) => None,
        };
        let Some(room) = room else {
            return;
        };
        room.last_used = clock;
        let event = Arc::new(event);
        room.announce(NOBODY, event.clone());
        if keep {
            remember(room, event, self.config.history);
        }
    }
}

impl Room {
    fn new(name: &str, config: &ChatConfig, from_bus: bool) -> Room {
        Room {
            name: name.to_owned(),
            members: BTreeMap::new(),
            log: Arc::new(RoomLog::new(config.queue_messages, config.queue_bytes)),
            history: VecDeque::new(),
            last_used: 0,
            from_bus,
        }
    }

    /// Appends to the log and wakes the room's readers at once: for events
    /// that come one at a time (joins, leaves, renames, linked servers).
    fn announce(&mut self, author: u64, event: Arc<Event>) {
        self.append(author, event);
        self.log.wake();
    }

    /// Appends to the log (waking readers is the caller's part), now and
    /// then forgetting what every member has read.
    fn append(&mut self, author: u64, event: Arc<Event>) {
        self.log.append(author, event);
        if self.log.wants_trim() {
            let oldest = self.members.values().map(|m| m.outbox.read_up_to()).min();
            self.log.trim_to(oldest.unwrap_or_else(|| self.log.head()));
        }
    }
}

fn bump(clock: &mut u64) -> u64 {
    *clock += 1;
    *clock
}

/// The room under `key`, created if there is space for it. A room a linked
/// server's message asks for (`from_bus`) takes only free space, at most a
/// quarter of `max_rooms` of them, and never pushes a room out.
fn room_entry<'a>(
    state: &'a mut State,
    config: &ChatConfig,
    key: &str,
    name: &str,
    from_bus: bool,
) -> Option<&'a mut Room> {
    if !state.rooms.contains_key(key) {
        let admitted = if from_bus {
            let bus_rooms = state.rooms.values().filter(|r| r.from_bus).count();
            state.rooms.len() < config.max_rooms && bus_rooms < (config.max_rooms / 4).max(1)
        } else {
            make_room_space(state, config)
        };
        if !admitted {
            return None;
        }
    }
    Some(
        state
            .rooms
            .entry(key.to_owned())
            .or_insert_with(|| Room::new(name, config, from_bus)),
    )
}

/// Makes space for one more room by forgetting the least recently used
/// empty one, rooms only the bus made first; false if every room has
/// members.
fn make_room_space(state: &mut State, config: &ChatConfig) -> bool {
    if state.rooms.len() < config.max_rooms {
        return true;
    }
    let oldest_empty = state
        .rooms
        .iter()
        .filter(|(_, room)| room.members.is_empty())
        .min_by_key(|(_, room)| (!room.from_bus, room.last_used))
        .map(|(key, _)| key.clone());
    match oldest_empty {
        Some(key) => state.rooms.remove(&key).is_some(),
        None => false,
    }
}

fn remember(room: &mut Room, event: Arc<Event>, limit: usize) {
    if limit == 0 {
        return;
    }
    if room.history.len() == limit {
        room.history.pop_front();
    }
    room.history.push_back(event);
}

/// Sorted nicknames in a room, local and remote.
fn who(state: &State, key: &str) -> Vec<String> {
    let mut nicks: Vec<String> = state
        .rooms
        .get(key)
        .map(|room| {
            room.members
                .keys()
                .filter_map(|id| state.seats.get(id).map(|s| s.nick.clone()))
                .collect()
        })
        .unwrap_or_default();
    let remote = state.remote.values().flat_map(HashMap::values);
    nicks.extend(
        remote
            .filter(|p| fold(&p.room) == key)
            .map(|p| p.nick.clone()),
    );
    nicks.sort_by_key(|nick| fold(nick));
    nicks.dedup();
    nicks
}
