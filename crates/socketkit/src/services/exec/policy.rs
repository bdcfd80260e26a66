//! What an authenticated exec client may run, decided before anything is
//! spawned: allow-list entries that pin a program and the leading arguments
//! it must be run with (OpenSSH's `command=`, as a prefix), the interpreters
//! that count as shells, and the environment names a client may never set.
//!
//! The rules, in the order they are applied to one `RUN`:
//!
//! - Without any allow-list an authenticated client may run any program, as
//!   with ssh. A shell line (`"shell"`) needs `--allow-shell`; so does an
//!   argv whose program is an interpreter ([`is_interpreter`]): `sh -c …`
//!   spelled as argv is still a shell. (A client that may run any program
//!   can still reach a shell through one that runs others, `find -exec` or
//!   a copied binary: without an allow-list, `--allow-shell` is a
//!   convenience, not a boundary.)
//! - With an allow-list (the server's `--allow-cmd`, or a certificate's own
//!   list), argv must start with one of its entries, in every list that
//!   applies; shell lines are refused; an interpreter runs only where an
//!   entry names it with its arguments (a bare `sh` entry is refused when
//!   the list is made).
//! - Environment names are checked when the list is made ([`EnvAllowList`]):
//!   `PATH`, the loader's `LD_*` and the variables that make shells and
//!   interpreters load code can never be allowed.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::ExecPolicy;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::exec::{Refusal, Run};
use crate::services::auth::Identity;

/// Programs that run code or other programs given as their arguments
/// (shells, language interpreters, wrappers like `env`, `nice`, `xargs`, `sudo`),
/// matched on the basename of `argv[0]` with any version suffix removed
/// (`/usr/bin/python3.12` is `python`).
const INTERPRETERS: &[&str] = &[
    // Shells and multi-call binaries.
    "sh", "ash", "bash", "dash", "ksh", "mksh", "pdksh", "rbash", "yash", "zsh", "csh", "tcsh",
    "fish", "busybox", "toybox",
    // Language interpreters and programs whose arguments are code.
    "python", "pypy", "perl", "ruby", "irb", "node", "nodejs", "deno", "bun", "php", "lua",
    "luajit", "tclsh", "wish", "expect", "guile", "awk", "gawk", "mawk", "nawk", "sed", "ed", "ex",
    "vi", "vim", "nvim", // Wrappers that run the program named in their arguments.
    "env", "nice", "nohup", "timeout", "xargs", "stdbuf", "setsid", "chroot", "ionice", "taskset",
    "chrt", "flock", "unshare", "nsenter", "setpriv", "runuser", "su", "sudo", "doas", "pkexec",
    "time", "watch", "script", "strace", "ltrace", "gdb", "valgrind",
];

/// Whether `program` (an `argv[0]`) is an interpreter: a shell, a language
/// interpreter, or a wrapper that runs what follows it, matched on the
/// basename with any version suffix removed.
pub fn is_interpreter(program: &str) -> bool {
    let name = Path::new(program)
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or(program);
    let unversioned = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
    INTERPRETERS.contains(&name) || INTERPRETERS.contains(&unversioned)
}

/// One allow-list entry: a program and the arguments it must start with.
/// `ls` admits any `ls` argv; `git status` admits `["git", "status", …]`.
/// Written as shell words (`'my tool' --flag`); the program is compared
/// exactly, not resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRule {
    prefix: Vec<String>,
}

impl CommandRule {
    /// The program and leading arguments this entry pins.
    pub fn prefix(&self) -> &[String] {
        &self.prefix
    }

    fn admits(&self, argv: &[String]) -> bool {
        argv.starts_with(&self.prefix)
    }
}

impl FromStr for CommandRule {
    type Err = Error;

    /// Refuses an empty entry and an interpreter without arguments (which
    /// would admit any code).
    fn from_str(text: &str) -> Result<CommandRule> {
        let prefix = shell_words::split(text)
            .map_err(|e| Error::new(ErrorKind::Config, format!("command entry {text:?}: {e}")))?;
        let Some(program) = prefix.first() else {
            return Err(Error::new(ErrorKind::Config, "empty command entry"));
        };
        if prefix.len() == 1 && is_interpreter(program) {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "command entry '{program}' is an interpreter: alone it would admit any code; name it with its arguments (e.g. '{program} /path/to/script')"
                ),
            ));
        }
        Ok(CommandRule { prefix })
    }
}

impl fmt::Display for CommandRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_words::join(&self.prefix))
    }
}

/// An allow-list: argv must start with one of its entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandList {
    rules: Vec<CommandRule>,
}

impl CommandList {
    /// A list of already parsed entries.
    pub fn new(rules: impl IntoIterator<Item = CommandRule>) -> CommandList {
        CommandList {
            rules: rules.into_iter().collect(),
        }
    }

    /// Parses each entry with [`CommandRule::from_str`].
    pub fn parse<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> Result<CommandList> {
        let rules = entries
            .into_iter()
            .map(|entry| entry.as_ref().parse())
            .collect::<Result<Vec<CommandRule>>>()?;
        Ok(CommandList { rules })
    }

    /// The entries.
    pub fn rules(&self) -> &[CommandRule] {
        &self.rules
    }

    /// Whether `argv` starts with one of the entries.
    pub fn admits(&self, argv: &[String]) -> bool {
        self.rules.iter().any(|rule| rule.admits(argv))
    }
}

/// Environment names a client may set: never `PATH`, never loader or
/// interpreter variables. Made only through [`EnvAllowList::new`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvAllowList {
    names: BTreeSet<String>,
}

/// Names that change which code a command loads or runs.
const REFUSED_ENV: &[&str] = &[
    "PATH",
    "IFS",
    "ENV",
    "BASH_ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "CDPATH",
    "GLOBIGNORE",
    "SHELL",
    "HOME",
    "ZDOTDIR",
    "INPUTRC",
    "XDG_CONFIG_HOME",
    "XDG_CONFIG_DIRS",
    "XDG_DATA_HOME",
    "XDG_DATA_DIRS",
    "GCONV_PATH",
    "LOCPATH",
    "NLSPATH",
    "HOSTALIASES",
    "RESOLV_HOST_CONF",
    "GLIBC_TUNABLES",
    "MALLOC_CHECK_",
    "OPENSSL_CONF",
    "OPENSSL_ENGINES",
    "OPENSSL_MODULES",
    "CLASSPATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "PAGER",
    "EDITOR",
    "VISUAL",
    "BROWSER",
    "TERMINFO",
    "TERMINFO_DIRS",
    "MANPAGER",
    "LESSOPEN",
    "LESSCLOSE",
    "TCLLIBPATH",
    "AWKPATH",
    "AWKLIBPATH",
    "EMACSLOADPATH",
    "VIMINIT",
    "EXINIT",
    "MYVIMRC",
];

/// Name prefixes of the same kind: the dynamic loader, exported bash
/// functions, and each interpreter's module and option variables.
const REFUSED_ENV_PREFIXES: &[&str] = &[
    "LD_",
    "DYLD_",
    "BASH_FUNC_",
    "PYTHON",
    "PERL",
    "RUBY",
    "GEM_",
    "BUNDLE_",
    "NODE_",
    "NPM_CONFIG_",
    "LUA_",
    "PHP",
    "GIT_",
    "GUILE_",
];

impl EnvAllowList {
    /// The names a client may set; refuses malformed names and those listed
    /// above, naming the first.
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Result<EnvAllowList> {
        let mut allowed = BTreeSet::new();
        for name in names {
            let name = name.as_ref();
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("{name:?} is not an environment variable name"),
                ));
            }
            if REFUSED_ENV.contains(&name)
                || REFUSED_ENV_PREFIXES
                    .iter()
                    .any(|prefix| name.starts_with(prefix))
            {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "environment variable {name} cannot be allowed: it changes which code a command loads or runs"
                    ),
                ));
            }
            allowed.insert(name.to_owned());
        }
        Ok(EnvAllowList { names: allowed })
    }

    /// Whether a client may set `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }
}

/// Why a `RUN` does not run; sent to the client as an `ERROR` of
/// [`Denial::kind`].
#[derive(Debug)]
pub(super) enum Denial {
    /// `RUN` had neither or both of argv and shell: malformed.
    Malformed,
    /// An argv with no program.
    EmptyArgv,
    /// No allow-list entry admits the argv.
    NotListed {
        argv: Vec<String>,
        interpreter: bool,
    },
    /// An interpreter as the program, on a server without shells.
    Interpreter { program: String },
    /// A shell line, on a server without shells.
    ShellLine,
    /// A shell line, where an allow-list pins argv.
    ShellWithList,
    /// An environment variable the policy does not allow.
    Env { name: String },
    /// The working directory (the server's or the requested one) cannot
    /// be used: the message says why.
    WorkingDir(String),
}

impl Denial {
    /// The `ERROR` kind: `protocol` for a malformed request (which ends
    /// the connection), `denied` for the rest.
    pub(super) fn kind(&self) -> Refusal {
        match self {
            Denial::Malformed => Refusal::Protocol,
            _ => Refusal::Denied,
        }
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denial::Malformed => f.write_str("RUN needs exactly one of argv and shell"),
            Denial::EmptyArgv => f.write_str("empty argv"),
            Denial::NotListed { argv, interpreter } => {
                write!(f, "command {} is not allowed", shell_words::join(argv))?;
                if *interpreter {
                    f.write_str(" (an interpreter runs only with the arguments an entry names)")?;
                }
                Ok(())
            }
            Denial::Interpreter { program } => write!(
                f,
                "'{program}' is an interpreter: running it is a shell, and this server does not run shells"
            ),
            Denial::ShellLine => f.write_str("this server does not run shell lines"),
            Denial::ShellWithList => f.write_str("shell lines are not allowed with a command list"),
            Denial::Env { name } => write!(f, "environment variable '{name}' is not allowed"),
            Denial::WorkingDir(why) => f.write_str(why),
        }
    }
}

/// Decides whether `request` may run for `identity`.
pub(super) fn check(
    policy: &ExecPolicy,
    identity: &Identity,
    request: &Run,
) -> std::result::Result<(), Denial> {
    let lists: Vec<&CommandList> = [&policy.allowed_commands, &identity.allowed_commands]
        .into_iter()
        .flatten()
        .collect();
    match (&request.argv, &request.shell) {
        (Some(argv), None) => {
            let Some(program) = argv.first() else {
                return Err(Denial::EmptyArgv);
            };
            if lists.iter().any(|list| !list.admits(argv)) {
                return Err(Denial::NotListed {
                    argv: argv.clone(),
                    interpreter: is_interpreter(program),
                });
            }
            if lists.is_empty() && is_interpreter(program) && !policy.allow_shell {
                return Err(Denial::Interpreter {
                    program: program.clone(),
                });
            }
        }
        (None, Some(_)) => {
            if !policy.allow_shell {
                return Err(Denial::ShellLine);
            }
            if !lists.is_empty() {
                return Err(Denial::ShellWithList);
            }
        }
        _ => return Err(Denial::Malformed),
    }
    if let Some(name) = request
        .env
        .keys()
        .find(|name| !policy.allowed_env.contains(name))
    {
        return Err(Denial::Env { name: name.clone() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Run {
        Run {
            argv: Some(words.iter().map(|w| (*w).to_owned()).collect()),
            ..Run::default()
        }
    }

    fn anyone() -> Identity {
        Identity {
            label: "test".to_owned(),
            allowed_commands: None,
        }
    }

    fn refused(policy: &ExecPolicy, identity: &Identity, request: &Run) -> bool {
        check(policy, identity, request).is_err()
    }

    #[test]
    fn interpreters_are_found_by_basename_and_version() {
        for program in [
            "sh",
            "/bin/sh",
            "python3",
            "/usr/bin/python3.12",
            "perl5.36",
            "env",
        ] {
            assert!(is_interpreter(program), "{program}");
        }
        for program in ["ls", "git", "/usr/bin/seq", "shred", "envsubst"] {
            assert!(!is_interpreter(program), "{program}");
        }
    }

    #[test]
    fn entries_pin_an_argv_prefix() {
        let list = CommandList::parse(["git status", "ls", "'my tool' --safe"]).unwrap();
        let words = |w: &[&str]| w.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        assert!(list.admits(&words(&["git", "status", "--short"])));
        assert!(!list.admits(&words(&["git", "push"])));
        assert!(!list.admits(&words(&["git"])));
        assert!(list.admits(&words(&["ls", "-l", "/"])));
        assert!(list.admits(&words(&["my tool", "--safe"])));
        assert!(!list.admits(&words(&["/bin/ls"])), "the program is exact");
    }

    #[test]
    fn a_bare_interpreter_entry_is_refused_but_one_with_arguments_is_not() {
        let error = CommandList::parse(["ls", "sh"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
        assert!(error.to_string().contains("interpreter"), "{error}");
        assert!(CommandList::parse(["sh /srv/backup.sh"]).is_ok());
        assert!(CommandList::parse([""]).is_err());
    }

    #[test]
    fn argv_interpreters_count_as_shells() {
        let policy = ExecPolicy::default();
        assert!(!refused(&policy, &anyone(), &argv(&["ls", "-l"])));
        assert!(refused(&policy, &anyone(), &argv(&["sh", "-c", "id"])));
        assert!(refused(&policy, &anyone(), &argv(&["/usr/bin/env", "sh"])));
        let shells = ExecPolicy {
            allow_shell: true,
            ..ExecPolicy::default()
        };
        assert!(!refused(&shells, &anyone(), &argv(&["sh", "-c", "id"])));
    }

    #[test]
    fn with_a_list_interpreters_need_an_entry_with_their_arguments() {
        let policy = ExecPolicy {
            allow_shell: true,
            allowed_commands: Some(CommandList::parse(["ls", "sh /srv/backup.sh"]).unwrap()),
            ..ExecPolicy::default()
        };
        assert!(!refused(&policy, &anyone(), &argv(&["ls"])));
        assert!(!refused(
            &policy,
            &anyone(),
            &argv(&["sh", "/srv/backup.sh", "-v"])
        ));
        assert!(refused(&policy, &anyone(), &argv(&["sh", "-c", "id"])));
        assert!(refused(
            &policy,
            &anyone(),
            &argv(&["/bin/sh", "/srv/backup.sh"])
        ));
        let line = Run {
            shell: Some("ls".to_owned()),
            ..Run::default()
        };
        assert!(
            refused(&policy, &anyone(), &line),
            "no shell lines with a list"
        );
    }

    #[test]
    fn a_certificate_list_narrows_the_server_list() {
        let policy = ExecPolicy {
            allowed_commands: Some(CommandList::parse(["ls", "uptime"]).unwrap()),
            ..ExecPolicy::default()
        };
        let narrow = Identity {
            label: "cert".to_owned(),
            allowed_commands: Some(CommandList::parse(["uptime"]).unwrap()),
        };
        assert!(!refused(&policy, &narrow, &argv(&["uptime"])));
        assert!(refused(&policy, &narrow, &argv(&["ls"])));
    }

    #[test]
    fn loader_and_interpreter_variables_cannot_be_allowed() {
        for name in [
            "PATH",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "GCONV_PATH",
            "PYTHONPATH",
            "PERL5LIB",
            "BASH_ENV",
            "ENV",
            "IFS",
            "BASH_FUNC_ls%%",
            "A=B",
            "",
        ] {
            let error = EnvAllowList::new([name]).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Config, "{name}");
        }
        let allowed = EnvAllowList::new(["GREETING", "TZ"]).unwrap();
        assert!(allowed.contains("GREETING") && !allowed.contains("PATH"));
    }
}
