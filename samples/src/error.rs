//! The error type of the sample data generator.

use std::path::PathBuf;

/// Everything that can go wrong while generating the sample data set.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// A file system operation failed on `path`.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory the operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Building an Arrow record batch failed.
    #[error("Arrow error: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// Writing a Parquet file failed.
    #[error("Parquet error: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    /// Writing an Avro file failed.
    #[error("Avro error: {0}")]
    Avro(#[from] apache_avro::Error),
    /// The options cannot describe a data set (for example zero days or zero assets).
    #[error("invalid sample options: {0}")]
    InvalidOptions(String),
}

impl SampleError {
    /// Wraps an I/O error together with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SampleError::Io {
            path: path.into(),
            source,
        }
    }
}
