//! Writing a file so that no reader ever sees half of it: the config file `opml import`
//! appends to (the daemon may reload it at any moment) and the posts `export` writes.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// Replaces the file at `path` (through a symlink: the file it points to) with `contents`: a
/// temporary file beside it is written, flushed to disk, given the old file's permissions and
/// renamed over it, so a reader (the daemon's reload) sees the old file or the new one, never
/// half of one. With `expect`, the file must still hold exactly that, else nothing is written.
pub fn replace(path: &Path, contents: &[u8], expect: Option<&[u8]>) -> io::Result<()> {
    let target = match std::fs::canonicalize(path) {
        Ok(real) => real,
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(e),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        match std::fs::metadata(&target) {
            Ok(old) => std::fs::set_permissions(&tmp, old.permissions())?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(expected) = expect {
            if std::fs::read(&target)? != expected {
                return Err(io::Error::other(
                    "the file changed while tributary was working on it; run the command again",
                ));
            }
        }
        std::fs::rename(&tmp, &target)?;
        // The rename is durable once the folder is; failing that is not worth an error.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
