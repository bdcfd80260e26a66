//! Containment of the commands a server runs: every process a command
//! starts, however it detaches (`setsid`, double fork), is found and killed
//! when the command ends, and nothing is left running or unreaped.
//!
//! A process group is not enough: a command that calls `setsid` leaves it,
//! and one that double-forks is re-parented out of reach. Two mechanisms,
//! chosen once at start ([`Containment::new`]) and logged:
//!
//! - **cgroup v2** (preferred): each command is started inside its own
//!   cgroup, created under the server's own cgroup, and ended by writing
//!   `cgroup.kill`, which the kernel applies to every member atomically, so
//!   no fork can race it. Needs a cgroup2 mount, `cgroup.kill` (Linux 5.14)
//!   and a writable cgroup (root, or a delegated subtree).
//! - **subreaper** (fallback): the server becomes a child subreaper, so
//!   whatever a command leaves behind is re-parented to the server instead of
//!   init. Each command gets its own session; ending it kills every process in
//!   that session and every orphan re-parented to the server that no running
//!   command still owns, and reaps them, until none is left.
//!
//! Either way each command runs in a session of its own (`setsid`), without
//! the server's controlling terminal. One [`Containment`] serves all the
//! commands of a server; each command's processes are a [`Contained`], whose
//! `Drop` kills them all, so a session that is dropped, aborted at the drain
//! deadline or unwound by a panic still leaves nothing behind.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::error::{Error, ErrorKind, Result};

/// How long ending a command may take to see all its processes gone before
/// giving up with a warning (a process stuck in uninterruptible sleep
/// cannot be reaped sooner, whatever we do).
const END_DEADLINE: Duration = Duration::from_secs(10);

/// Between checks while waiting for killed processes to disappear.
const POLL: Duration = Duration::from_millis(5);

/// Which containment to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ContainmentMode {
    /// cgroup v2 where the server can create one, else the subreaper.
    #[default]
    Auto,
    /// cgroup v2 or fail at start.
    Cgroup,
    /// The subreaper, even where a cgroup is available.
    Subreaper,
}

/// The containment of all commands one server runs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Containment {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: Kind,
    /// Our pid and session: an orphan in our own session is a child of
    /// other code in this process (not a command) and is left alone.
    pid: i32,
    sid: i32,
    /// The leaders (= session ids) of the commands running now. Held
    /// across spawning, so a sweep never sees a new leader unregistered.
    running: Mutex<HashSet<i32>>,
}

#[derive(Debug)]
enum Kind {
    Cgroup { parent: PathBuf, next: AtomicU64 },
    Subreaper,
}

impl Containment {
    /// Sets up containment as `mode` asks and logs which one is in force.
    /// Fails only when `mode` names one that this system cannot provide.
    pub fn new(mode: ContainmentMode) -> Result<Containment> {
        let kind = match mode {
            ContainmentMode::Subreaper => become_subreaper()?,
            ContainmentMode::Cgroup => cgroup_parent().map_err(|why| {
                Error::new(
                    ErrorKind::Unsupported,
                    format!("no cgroup v2 containment: {why}"),
                )
            })?,
            ContainmentMode::Auto => match cgroup_parent() {
                Ok(kind) => kind,
                Err(why) => {
                    info!("cgroup v2 containment unavailable ({why}); using a subreaper");
                    become_subreaper()?
                }
            },
        };
        // SAFETY: getpid and getsid(0) only read our own process's ids.
        let (pid, sid) = unsafe { (libc::getpid(), libc::getsid(0)) };
        let containment = Containment {
            inner: Arc::new(Inner {
                kind,
                pid,
                sid,
                running: Mutex::new(HashSet::new()),
            }),
        };
        info!(containment = %containment.describe(), "commands are contained");
        Ok(containment)
    }

    /// Which mechanism is in force, for logs.
    pub fn describe(&self) -> String {
        match &self.inner.kind {
            Kind::Cgroup { parent, .. } => {
                format!("cgroup v2, one per command under {}", parent.display())
            }
            Kind::Subreaper => "subreaper and a session per command".to_owned(),
        }
    }

    /// Whether commands get a cgroup each (else the subreaper).
    pub fn uses_cgroup(&self) -> bool {
        matches!(self.inner.kind, Kind::Cgroup { .. })
    }

    /// Starts `command` contained: in a new session, and in a new cgroup
    /// where cgroups are used (joined before `exec`, so not even the
    /// command's first instruction runs outside it).
    pub fn spawn(&self, command: &mut Command) -> io::Result<Contained> {
        let cgroup = match &self.inner.kind {
            Kind::Cgroup { parent, next } => {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let dir = parent.join(n.to_string());
                fs::create_dir(&dir)?;
                Some(dir)
            }
            Kind::Subreaper => None,
        };
        let procs = match &cgroup {
            Some(dir) => match fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
            {
                Ok(file) => Some(file),
                Err(error) => {
                    let _ = fs::remove_dir(dir);
                    return Err(error);
                }
            },
            None => None,
        };
        let procs_fd = procs.as_ref().map(AsRawFd::as_raw_fd);
        // The server raised its own open-file limit; the command gets the
        // one the server started with.
        let nofile = crate::server::original_open_files_limit();
        // SAFETY: the closure runs between fork and exec and calls only
        // async-signal-safe functions (write, setsid, setrlimit) on memory
        // it owns.
        unsafe {
            command.pre_exec(move || {
                if let Some(limit) = nofile {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if let Some(fd) = procs_fd {
                    // "0" moves the writing process: this child.
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut running = self.lock();
        let spawned = command.spawn().and_then(|mut child| {
            // A child not yet waited for always has its pid; without one
            // there would be nothing safe to signal (killpg(0) is our group).
            match child.id().and_then(|pid| i32::try_from(pid).ok()) {
                Some(leader) if leader > 0 => Ok((child, leader)),
                _ => {
                    let _ = child.start_kill();
                    Err(io::Error::other("the started command has no pid"))
                }
            }
        });
        let (child, leader) = match spawned {
            Ok(spawned) => spawned,
            Err(error) => {
                drop(running);
                if let Some(dir) = &cgroup {
                    let _ = fs::remove_dir(dir);
                }
                return Err(error);
            }
        };
        drop(procs);
        running.insert(leader);
        drop(running);
        Ok(Contained {
            containment: self.clone(),
            child: Some(child),
            leader,
            cgroup,
            ended: false,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        self.inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// One pass over /proc for the command led by `leader` (`None`: for no
    /// command in particular): SIGKILL to every process still in its session
    /// and, with `kill_orphans`, to every orphan of ours that no running
    /// command owns; reaps the dead orphans. Returns how many processes are
    /// still to be waited for.
    fn sweep(&self, leader: Option<i32>, kill_orphans: bool) -> usize {
        // Read /proc before taking the lock, so spawns wait only for the
        // decisions, not the scan. Still race-free: `spawn` holds the lock
        // from before fork until it records the leader, so any leader this
        // scan saw is recorded by the time the lock is ours.
        let processes = processes();
        let running = self.lock();
        let mut pending = 0;
        for process in processes {
            let ours = process.ppid == self.inner.pid;
            let in_session = Some(process.sid) == leader && process.pid != self.inner.pid;
            // A child of other code in this process, or a command's leader
            // that tokio reaps: not ours to touch.
            let foreign = process.sid == self.inner.sid
                || (running.contains(&process.pid) && Some(process.pid) != leader);
            if foreign {
                continue;
            }
            if process.zombie {
                if ours && Some(process.pid) != leader {
                    reap(process.pid);
                } else if in_session {
                    // Its parent (dying too, or us soon) will reap it.
                    pending += 1;
                }
                continue;
            }
            // An orphan of a command still running stays with it until that
            // command ends.
            let owned = running.contains(&process.sid) && Some(process.sid) != leader;
            if in_session || (kill_orphans && ours && !owned && Some(process.pid) != leader) {
                kill(process.pid, libc::SIGKILL);
                pending += 1;
            }
        }
        pending
    }
}

/// The processes of one command. Dropping it kills them all (reaping
/// continues in the background when a runtime is there to do it).
#[derive(Debug)]
pub struct Contained {
    containment: Containment,
    child: Option<Child>,
    /// The command's pid, which is also its process group and session id
    /// (always positive).
    leader: i32,
    cgroup: Option<PathBuf>,
    ended: bool,
}

impl Contained {
    /// The command's pid (also its process group and session id).
    pub fn pid(&self) -> u32 {
        self.leader.unsigned_abs()
    }

    /// The command itself, to take its pipes.
    pub fn child(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the child is taken only by end or drop")
    }

    /// Waits for the command itself (not its descendants) to exit.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child().wait().await
    }

    /// A signal for the command's process group, as a terminal sends one
    /// to its foreground job.
    pub fn signal_group(&self, signal: i32) {
        // SAFETY: killpg only sends a signal; an empty group is ESRCH. The
        // leader is positive, so this never means our own group (0).
        unsafe {
            libc::killpg(self.leader, signal);
        }
    }

    /// A signal for every process of the command, wherever it went.
    pub fn signal_all(&self, signal: i32) {
        if signal == libc::SIGKILL {
            self.kill_all();
            return;
        }
        self.signal_group(signal);
        match &self.cgroup {
            Some(dir) => {
                for pid in cgroup_members(dir) {
                    kill(pid, signal);
                }
            }
            None => {
                for process in processes() {
                    if process.sid == self.leader && !process.zombie {
                        kill(process.pid, signal);
                    }
                }
            }
        }
    }

    /// SIGKILL to every process of the command, at once.
    fn kill_all(&self) {
        self.signal_group(libc::SIGKILL);
        match &self.cgroup {
            Some(dir) => {
                if let Err(error) = fs::write(dir.join("cgroup.kill"), b"1") {
                    warn!(cgroup = %dir.display(), %error, "cannot kill a command's cgroup");
                }
            }
            None => {
                self.containment.sweep(Some(self.leader), true);
            }
        }
    }

    /// Kills whatever of the command is still running and waits until all
    /// of it is gone and reaped (bounded by `END_DEADLINE`).
    pub async fn end(mut self) {
        self.ended = true;
        let remains = Remains {
            containment: self.containment.clone(),
            child: self.child.take(),
            leader: self.leader,
            cgroup: self.cgroup.take(),
        };
        remains.finish().await;
    }
}

impl Drop for Contained {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        self.kill_all();
        let remains = Remains {
            containment: self.containment.clone(),
            child: self.child.take(),
            leader: self.leader,
            cgroup: self.cgroup.take(),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(remains.finish());
            }
            // No runtime to wait in: the kill above is all we can do;
            // Remains' drop tidies what it can.
            Err(_) => drop(remains),
        }
    }
}

/// What is left to do once a command is to end: kill, wait, reap, tidy.
struct Remains {
    containment: Containment,
    child: Option<Child>,
    leader: i32,
    cgroup: Option<PathBuf>,
}

impl Remains {
    async fn finish(mut self) {
        let deadline = Instant::now() + END_DEADLINE;
        if let Some(dir) = &self.cgroup {
            let _ = fs::write(dir.join("cgroup.kill"), b"1");
        }
        // SAFETY: killpg only sends a signal; the leader is positive.
        unsafe {
            libc::killpg(self.leader, libc::SIGKILL);
        }
        if let Some(child) = &mut self.child {
            let _ = tokio::time::timeout_at(deadline, child.wait()).await;
        }
        loop {
            let pending = match &self.cgroup {
                // Members that died have left the cgroup, zombie or not.
                Some(dir) => usize::from(cgroup_populated(dir)),
                None => self.containment.sweep(Some(self.leader), true),
            };
            if pending == 0 {
                break;
            }
            if Instant::now() >= deadline {
                warn!(
                    pid = self.leader,
                    "a command's processes did not all die in {END_DEADLINE:?}"
                );
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        if let Some(dir) = self.cgroup.take() {
            // What the command left is re-parented to init, or to us if we
            // are PID 1 in a container: then it is ours to reap.
            self.containment.sweep(None, false);
            if let Err(error) = fs::remove_dir(&dir) {
                warn!(cgroup = %dir.display(), %error, "cannot remove a command's cgroup");
            }
        }
    }
}

impl Drop for Remains {
    fn drop(&mut self) {
        self.containment.lock().remove(&self.leader);
        if let Some(dir) = &self.cgroup {
            // Not finished (no runtime, or the runtime is going away): kill
            // again and try to tidy; a cgroup still populated stays.
            let _ = fs::write(dir.join("cgroup.kill"), b"1");
            let _ = fs::remove_dir(dir);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Kind::Cgroup { parent, .. } = &self.kind {
            let _ = fs::remove_dir(parent);
        }
    }
}

fn kill(pid: i32, signal: i32) {
    // SAFETY: kill only sends a signal; a process already gone is ESRCH.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Reaps `pid` if it is a dead child of ours, without blocking.
fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid on one pid with WNOHANG writes only `status`.
    unsafe {
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
}

fn become_subreaper() -> Result<Kind> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument and changes
    // only which process inherits our orphans.
    let done = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if done == -1 {
        return Err(Error::with_source(
            ErrorKind::Unsupported,
            "cannot become a child subreaper to contain commands",
            io::Error::last_os_error(),
        ));
    }
    Ok(Kind::Subreaper)
}

/// Creates this server's cgroup for commands (`socketkit-PID`) under its
/// own cgroup, or says why it cannot.
fn cgroup_parent() -> Result<Kind, String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    let mount = cgroup2_mount(&mountinfo).ok_or("no cgroup2 file system mounted")?;
    let membership =
        fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("/proc/self/cgroup: {e}"))?;
    let own = membership
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or("this process has no cgroup v2 membership")?;
    let own = mount.join(own.trim_start_matches('/'));
    // Moving a process needs write access to the cgroup.procs of the common
    // ancestor, which is our own cgroup.
    fs::OpenOptions::new()
        .write(true)
        .open(own.join("cgroup.procs"))
        .map_err(|e| format!("{}: {e}", own.join("cgroup.procs").display()))?;
    remove_stale(&own);
    // SAFETY: getpid only reads our pid.
    let parent = own.join(format!("socketkit-{}", unsafe { libc::getpid() }));
    match fs::create_dir(&parent) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", parent.display())),
    }
    if !parent.join("cgroup.kill").exists() {
        let _ = fs::remove_dir(&parent);
        return Err("the kernel has no cgroup.kill (Linux 5.14 or later)".to_owned());
    }
    Ok(Kind::Cgroup {
        parent,
        next: AtomicU64::new(0),
    })
}

/// Ends what servers that died without tidying up (SIGKILL, a crash) left
/// under `own`: their commands' cgroups are killed and removed, so not even
/// a crash lets a command outlive its server for longer than the next start.
fn remove_stale(own: &Path) {
    let Ok(entries) = fs::read_dir(own) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("socketkit-"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        // A dead server may linger as a zombie until its parent reaps it.
        let running = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| parse_stat(0, &stat))
            .is_some_and(|process| !process.zombie);
        if running {
            continue;
        }
        let parent = entry.path();
        let commands: Vec<PathBuf> = fs::read_dir(&parent)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        for dir in &commands {
            let _ = fs::write(dir.join("cgroup.kill"), b"1");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while commands.iter().any(|dir| cgroup_populated(dir))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(POLL);
        }
        for dir in &commands {
            let _ = fs::remove_dir(dir);
        }
        match fs::remove_dir(&parent) {
            Ok(()) => info!(
                cgroup = %parent.display(),
                commands = commands.len(),
                "removed the command cgroups of a server that died"
            ),
            Err(error) => {
                warn!(cgroup = %parent.display(), %error, "cannot remove a dead server's cgroup")
            }
        }
    }
}

/// Where the cgroup2 file system is mounted, from /proc/self/mountinfo
/// (a hybrid layout mounts it at /sys/fs/cgroup/unified).
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs_part) = line.split_once(" - ")?;
        if fs_part.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let point = mount.split_whitespace().nth(4)?;
        Some(PathBuf::from(unescape_mount(point)))
    })
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn cgroup_members(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

/// Whether any process is still in the cgroup (`populated 1` in
/// cgroup.events); a cgroup that cannot be read counts as empty.
fn cgroup_populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events"))
        .unwrap_or_default()
        .lines()
        .any(|line| line.trim() == "populated 1")
}

/// One line of /proc/PID/stat, the fields a sweep needs.
struct Process {
    pid: i32,
    ppid: i32,
    sid: i32,
    zombie: bool,
}

/// Every process on the system, from /proc (those that vanish while being
/// read are skipped).
fn processes() -> Vec<Process> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            parse_stat(pid, &stat)
        })
        .collect()
}

/// Parses `PID (COMM) STATE PPID PGRP SESSION ...`; COMM may hold spaces
/// and parentheses, so the fields are counted from the last `)`.
fn parse_stat(pid: i32, stat: &str) -> Option<Process> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let _pgrp = fields.next()?;
    let sid = fields.next()?.parse().ok()?;
    Some(Process {
        pid,
        ppid,
        sid,
        zombie: state == "Z",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_of_a_hybrid_layout() {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs ro,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        assert_eq!(
            cgroup2_mount(mountinfo),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            cgroup2_mount("30 25 0:26 / /sys rw - sysfs sysfs rw\n"),
            None
        );
        assert_eq!(unescape_mount(r"/mnt/a\040b"), "/mnt/a b");
    }

    #[test]
    fn stat_lines_with_hostile_names_parse() {
        let process = parse_stat(7, "7 (a) b) Z 1 7 99 0 -1").unwrap();
        assert_eq!((process.ppid, process.sid, process.zombie), (1, 99, true));
        assert!(parse_stat(7, "garbage").is_none());
    }
}
