//! Token files (`--token-file`), shared by servers and clients.

use std::path::Path;

use anyhow::{bail, Context};

/// The token in `path`, surrounding whitespace removed; an empty file is an
/// error rather than an empty secret. `None` without a path.
pub fn read(path: Option<&Path>) -> anyhow::Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        bail!("the token file {} is empty", path.display());
    }
    Ok(Some(token.to_owned()))
}
