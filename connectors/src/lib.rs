//! Lakewave connectors: where data lives and how to reach it.
//!
//! This version understands local storage (`file://` URLs and plain paths,
//! with globs); object stores and the MySQL connector plug in here through
//! the same [`Location`] type.

pub mod location;
pub mod mysql;
pub mod sql;

pub use location::{Location, LocationError, list_local_files};
