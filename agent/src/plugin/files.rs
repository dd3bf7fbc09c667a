//! `read-file` and `write-file`: file access under granted paths.
//!
//! The path is checked by `caps` (absolute, no `..`, under a grant before
//! and after resolving symlinks) and the resolved path is what gets opened.
//! Only regular files are read or written: a FIFO or a device could block
//! the call forever or never end.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};

use super::caps::Access;
use super::config::bytes_text;
use super::state::{HostCallError, StepContext};

/// The most one `read-file` call returns, whatever the plugin asks.
pub(crate) const MAX_READ: u64 = 16 * 1024 * 1024;

pub(crate) fn read(
    ctx: &mut StepContext,
    path: &str,
    max_bytes: u64,
    from_end: bool,
) -> Result<Vec<u8>, HostCallError> {
    let resolved = ctx
        .caps
        .check_path(&ctx.plugin, path, Access::Read)
        .map_err(|r| ctx.refuse(r))?;
    let io_error = |ctx: &StepContext, e: std::io::Error| match e.kind() {
        ErrorKind::NotFound => ctx.failed(format!("no such file: {path}")),
        _ => ctx.failed(format!("cannot read {path}: {e}")),
    };
    let meta = std::fs::metadata(&resolved).map_err(|e| io_error(ctx, e))?;
    if !meta.is_file() {
        return Err(ctx.failed(format!("{path} is not a regular file")));
    }
    let max = max_bytes.min(MAX_READ);
    let mut file = File::open(&resolved).map_err(|e| io_error(ctx, e))?;
    if from_end && meta.len() > max {
        file.seek(SeekFrom::Start(meta.len() - max))
            .map_err(|e| io_error(ctx, e))?;
    }
    let mut contents = Vec::new();
    file.take(max)
        .read_to_end(&mut contents)
        .map_err(|e| io_error(ctx, e))?;
    if max_bytes > MAX_READ && contents.len() as u64 == MAX_READ {
        tracing::debug!(plugin = %ctx.plugin, "read of {path} capped at {}", bytes_text(MAX_READ));
    }
    Ok(contents)
}

pub(crate) fn write(
    ctx: &mut StepContext,
    path: &str,
    contents: &[u8],
    append: bool,
) -> Result<(), HostCallError> {
    if ctx.dry_run {
        return Err(ctx.deny(format!("dry-run: write to {path} refused")));
    }
    let resolved = ctx
        .caps
        .check_path(&ctx.plugin, path, Access::Write)
        .map_err(|r| ctx.refuse(r))?;
    let io_error = |ctx: &StepContext, e: std::io::Error| match e.kind() {
        ErrorKind::NotFound => {
            ctx.failed(format!("cannot write {path}: its directory does not exist"))
        }
        _ => ctx.failed(format!("cannot write {path}: {e}")),
    };
    if let Ok(meta) = std::fs::metadata(&resolved)
        && !meta.is_file()
    {
        return Err(ctx.failed(format!("{path} is not a regular file")));
    }
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(&resolved)
        .map_err(|e| io_error(ctx, e))?;
    file.write_all(contents).map_err(|e| io_error(ctx, e))?;
    file.flush().map_err(|e| io_error(ctx, e))?;
    Ok(())
}
