//! The command line about itself: parsing with a hint when a flag belongs
//! to another service, shell completion scripts and man pages. All three
//! read the one clap definition in `args.rs`, so none can drift from it.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches};

use crate::args::Cli;

/// Parses the command line, exiting as clap does on `--help` or a usage
/// error (status 2). A flag of another service gets a tip naming the
/// service(s) that take it: `serve echo --bot` says `--bot` is chat's.
pub fn parse() -> Cli {
    let mut command = Cli::command();
    let argv = service_first(std::env::args_os().collect(), &command);
    let parsed = command
        .try_get_matches_from_mut(&argv)
        .and_then(|mut matches| Cli::from_arg_matches_mut(&mut matches));
    match parsed {
        Ok(cli) => cli,
        Err(mut error) => {
            if error.kind() == ErrorKind::UnknownArgument {
                add_owner_tip(&mut error, &command, &argv);
            }
            error.format(&mut command).exit()
        }
    }
}

/// `serve --max-conns 5 echo ADDR` was valid while the service was a
/// positional argument: move the service name up to just after `serve`, so
/// scripts written that way still run.
fn service_first(mut argv: Vec<OsString>, command: &clap::Command) -> Vec<OsString> {
    let Some(serve) = command.find_subcommand("serve") else {
        return argv;
    };
    let is_flag = |word: &OsString| word.to_string_lossy().starts_with('-');
    let Some(at) = argv.iter().skip(1).position(|w| !is_flag(w)).map(|i| i + 1) else {
        return argv;
    };
    let help = ["-h", "--help", "--"];
    match argv.get(at + 1) {
        Some(next) if argv[at] == "serve" && is_flag(next) && !help.iter().any(|h| next == h) => {}
        _ => return argv,
    }
    let service = argv[at + 1..]
        .iter()
        .take_while(|word| *word != "--")
        .position(|word| {
            serve
                .get_subcommands()
                .any(|sub| sub.get_name() != "help" && *word == sub.get_name())
        });
    if let Some(offset) = service {
        let name = argv.remove(at + 1 + offset);
        argv.insert(at + 1, name);
    }
    argv
}

/// For `serve SERVICE ... --flag` where --flag is some other service's:
/// a `tip:` line naming the services that take it.
fn add_owner_tip(error: &mut clap::Error, command: &clap::Command, argv: &[OsString]) {
    let Some(ContextValue::String(flag)) = error.get(ContextKind::InvalidArg) else {
        return;
    };
    // `--to=tcp://…` is reported whole; the flag is what precedes `=`.
    let flag = flag.split('=').next().unwrap_or_default().to_owned();
    let mut words = argv.iter().skip(1).map(|word| word.to_string_lossy());
    if !words.any(|word| word == "serve") {
        return;
    }
    let Some(serve) = command.find_subcommand("serve") else {
        return;
    };
    let services: Vec<&clap::Command> = serve
        .get_subcommands()
        .filter(|sub| sub.get_name() != "help")
        .collect();
    let owners: Vec<String> = services
        .iter()
        .filter(|sub| sub.get_arguments().any(|arg| spelled(arg, &flag)))
        .map(|sub| format!("`serve {}`", sub.get_name()))
        .collect();
    let service = words.find(|word| services.iter().any(|sub| *word == sub.get_name()));
    let tip = match service {
        _ if owners.is_empty() => return,
        None => "name the service first: socketkit serve SERVICE [ADDR...] [FLAGS]".to_owned(),
        Some(service) if owners.contains(&format!("`serve {service}`")) => return,
        Some(service) => format!(
            "{flag} belongs to {}, not `serve {service}`",
            owners.join(", ")
        ),
    };
    // Replaces clap's own tip (pass it after `--`), which would mislead.
    error.insert(
        ContextKind::Suggested,
        ContextValue::StyledStrs(vec![tip.into()]),
    );
}

/// Whether `flag` (`--name` or `-c`) names `arg`.
fn spelled(arg: &clap::Arg, flag: &str) -> bool {
    if let Some(long) = flag.strip_prefix("--") {
        arg.get_long() == Some(long)
            || arg
                .get_all_aliases()
                .is_some_and(|aliases| aliases.contains(&long))
    } else if let Some(short) = flag.strip_prefix('-') {
        let mut chars = short.chars();
        matches!((chars.next(), chars.next()), (Some(c), None) if arg.get_short() == Some(c))
    } else {
        false
    }
}

/// `socketkit completions SHELL`: the script on stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "socketkit", &mut script);
    let mut stdout = crate::stdout::std();
    stdout.write_all(&script)?;
    stdout.flush()?;
    Ok(())
}

/// `socketkit man DIR`: socketkit.1, then one page per subcommand at every
/// depth, named as git names its pages (socketkit-serve-echo.1).
pub fn man_pages(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut command = Cli::command();
    // Built, so global flags (-v, -q) and --help reach every page.
    command.build();
    let mut written = 0;
    write_pages(dir, &command, None, &mut written)?;
    eprintln!("wrote {written} man pages to {}", dir.display());
    Ok(())
}

fn write_pages(
    dir: &Path,
    command: &clap::Command,
    parent: Option<&str>,
    written: &mut usize,
) -> anyhow::Result<()> {
    let name = match parent {
        Some(parent) => format!("{parent}-{}", command.get_name()),
        None => command.get_name().to_owned(),
    };
    let page = command.clone().name(name.clone());
    let path = dir.join(format!("{name}.1"));
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).render(&mut roff)?;
    std::fs::write(&path, roff).with_context(|| format!("cannot write {}", path.display()))?;
    *written += 1;
    for sub in command.get_subcommands() {
        // clap's own `help` subcommand has nothing to document.
        if sub.get_name() != "help" {
            write_pages(dir, sub, Some(&name), written)?;
        }
    }
    Ok(())
}
