//! Crash-safe file creation: write to a hidden temporary name next to the
//! target, then rename it into place once complete.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::SampleError;

/// A file being written under a temporary name (`.<name>.tmp` in the same
/// directory). [`AtomicFile::commit`] renames it to its final name; dropping it
/// without committing removes the temporary file.
pub(crate) struct AtomicFile {
    writer: Option<BufWriter<File>>,
    tmp: PathBuf,
    target: PathBuf,
}

impl AtomicFile {
    /// Creates the parent directories and the temporary file for `target`.
    pub(crate) fn create(target: &Path) -> Result<Self, SampleError> {
        let parent = target.parent().unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| SampleError::io(parent, e))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent.join(format!(".{name}.tmp"));
        let file = File::create(&tmp).map_err(|e| SampleError::io(&tmp, e))?;
        Ok(AtomicFile {
            writer: Some(BufWriter::with_capacity(256 * 1024, file)),
            tmp,
            target: target.to_path_buf(),
        })
    }

    /// Flushes the data and renames the file to its final name.
    pub(crate) fn commit(mut self) -> Result<(), SampleError> {
        if let Some(writer) = self.writer.take() {
            let file = writer
                .into_inner()
                .map_err(|e| SampleError::io(&self.tmp, e.into_error()))?;
            drop(file);
        }
        std::fs::rename(&self.tmp, &self.target).map_err(|e| SampleError::io(&self.target, e))
    }

    /// The final path of the file.
    pub(crate) fn path(&self) -> &Path {
        &self.target
    }

    fn writer(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.writer
            .as_mut()
            .ok_or_else(|| io::Error::other("file already committed"))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer()?.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer()?.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            // Not committed: leave no partial file behind (best effort).
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `contents` to `target` through a temporary file.
pub(crate) fn write_atomic(target: &Path, contents: &[u8]) -> Result<(), SampleError> {
    let mut file = AtomicFile::create(target)?;
    file.write_all(contents)
        .map_err(|e| SampleError::io(target, e))?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_renames_and_drop_cleans_up() {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = dir.path().join("a/b/file.txt");
        let mut file = AtomicFile::create(&target).expect("create");
        file.write_all(b"hello").expect("write");
        assert!(!target.exists());
        file.commit().expect("commit");
        assert_eq!(std::fs::read(&target).expect("read"), b"hello");

        let other = dir.path().join("a/b/other.txt");
        let file = AtomicFile::create(&other).expect("create");
        drop(file);
        assert!(!other.exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("file.txt")]);
    }
}
