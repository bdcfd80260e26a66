// The socketkit chat page: one WebSocket, the nickname as the first frame,
// then lines exactly as a terminal user types them; the server answers with
// one JSON event per frame. All text goes in through textContent, never
// innerHTML, so nothing anyone types can become markup.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { nick: null, room: null, members: new Set(), socket: null, retry: 500, wanted: null };

function time(ms) {
  const d = ms ? new Date(ms) : new Date();
  return d.toTimeString().slice(0, 5);
}

function line(kind, parts, ms) {
  const li = document.createElement("li");
  li.className = kind;
  const stamp = document.createElement("span");
  stamp.className = "time";
  stamp.textContent = time(ms);
  li.append(stamp);
  for (const [cls, text] of parts) {
    const span = document.createElement("span");
    if (cls) span.className = cls;
    span.textContent = text;
    li.append(span);
  }
  const log = $("log");
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(li);
  while (log.children.length > 1000) log.firstChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

const notice = (text) => line("notice", [[null, "*** " + text]]);

function drawMembers() {
  const ul = $("members");
  ul.replaceChildren();
  for (const nick of [...state.members].sort((a, b) => a.localeCompare(b))) {
    const li = document.createElement("li");
    li.textContent = nick === state.nick ? nick + " (you)" : nick;
    ul.append(li);
  }
}

function drawRooms(rooms) {
  const ul = $("rooms");
  ul.replaceChildren();
  for (const room of rooms) {
    const li = document.createElement("li");
    li.textContent = "#" + room.name + " (" + room.members + ")";
    li.dataset.room = room.name;
    if (state.room && room.name.toLowerCase() === state.room.toLowerCase()) li.className = "current";
    li.onclick = () => send("/join " + room.name);
    ul.append(li);
  }
}

function inRoom(room) {
  return state.room && room.toLowerCase() === state.room.toLowerCase();
}

const handlers = {
  welcome(e) { state.nick = e.nick; state.wanted = e.nick; $("me").textContent = e.nick; notice("Welcome, " + e.nick + "! Type /help for commands."); },
  entered(e) {
    state.room = e.room; state.members = new Set();
    $("room-title").textContent = "#" + e.room;
    notice("You are in #" + e.room);
    send("/rooms");
  },
  members(e) { if (inRoom(e.room)) { state.members = new Set(e.nicks); drawMembers(); } notice("In #" + e.room + " (" + e.nicks.length + "): " + e.nicks.join(", ")); },
  rooms(e) { drawRooms(e.rooms); },
  message(e) {
    if (e.action) line("message", [["nick", "* " + e.nick], [null, " " + e.text]], e.time);
    else line("message", [["nick", "<" + e.nick + ">"], [null, " " + e.text]], e.time);
  },
  private(e) {
    line("private", [[null, e.outgoing ? "-> *" + e.to + "* " : "*" + e.from + "* "], [null, e.text]]);
  },
  joined(e) { if (inRoom(e.room)) { state.members.add(e.nick); drawMembers(); } notice(e.nick + " joined #" + e.room); },
  left(e) {
    if (inRoom(e.room)) { state.members.delete(e.nick); drawMembers(); }
    notice(e.nick + " left #" + e.room + (e.reason ? " (" + e.reason + ")" : ""));
  },
  renamed(e) {
    state.members.delete(e.old); state.members.add(e.new);
    if (e.old === state.nick) { state.nick = e.new; state.wanted = e.new; $("me").textContent = e.new; }
    drawMembers();
    notice(e.old + " is now known as " + e.new);
  },
  notice(e) { notice(e.text); },
  error(e) { line("error", [[null, "error: " + e.text]]); },
  link(e) { notice(e.up ? "The link to the other chat servers is back" : "The link to the other chat servers is down"); },
  shutdown() { notice("Server shutting down; reconnecting when it is back"); },
};

function setStatus(up) {
  const s = $("status");
  s.textContent = up ? "connected" : "reconnecting…";
  s.className = up ? "up" : "down";
}

function send(text) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(text);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const socket = new WebSocket(scheme + location.host + "/ws");
  state.socket = socket;
  socket.onopen = () => {
    state.retry = 500;
    setStatus(true);
    socket.send(state.wanted || "");
    if (state.room && state.room.toLowerCase() !== "lobby") {
      socket.send("/join " + state.room);
    }
  };
  socket.onmessage = (msg) => {
    let event;
    try { event = JSON.parse(msg.data); } catch { return; }
    const handler = handlers[event.type];
    if (handler) handler(event);
  };
  socket.onclose = () => {
    if (state.socket !== socket) return;
    setStatus(false);
    setTimeout(connect, state.retry);
    state.retry = Math.min(state.retry * 2, 5000);
  };
}

$("login").onsubmit = (ev) => {
  ev.preventDefault();
  state.wanted = $("nick-input").value.trim();
  $("login").hidden = true;
  $("chat").hidden = false;
  connect();
  $("input").focus();
};

$("say").onsubmit = (ev) => {
  ev.preventDefault();
  const text = $("input").value;
  if (!text.trim()) return;
  send(text);
  $("input").value = "";
};

setInterval(() => { if (state.room) send("/rooms"); }, 15000);
