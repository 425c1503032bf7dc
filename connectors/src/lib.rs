//! Lakewave connectors: where data lives and how to reach it.
//!
//! Locations are local paths (with globs) or object-store URLs ([`stores`]:
//! S3 and S3-compatible stores, OCI, Azure, GCS, HTTP); the MySQL connector
//! reads backend tables into the engine.

pub mod aws;
pub mod location;
pub mod mysql;
pub mod par;
pub mod sql;
pub mod stores;

pub use location::{Location, LocationError, list_local_files};
