//! `-x/--hexdump` and `--hexdump-file`: where the dump goes.

use anyhow::Context;
use socketkit::hexdump::HexDump;

use crate::args::HexdumpArgs;

/// The dump asked for, if any: to FILE (created or truncated) or stderr.
pub fn open(args: &HexdumpArgs) -> anyhow::Result<Option<HexDump>> {
    match (&args.hexdump_file, args.hexdump) {
        (Some(path), _) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create --hexdump-file {}", path.display()))?;
            Ok(Some(HexDump::new(file)))
        }
        (None, true) => Ok(Some(HexDump::new(std::io::stderr()))),
        (None, false) => Ok(None),
    }
}
