//! Lakewave's MySQL front end: the wire protocol, client sessions and the
//! routing of statements to the lakehouse engine.
//!
//! The binary `lakewave` (see `main.rs`) wires this crate to the command
//! line; tests start [`server::run`] on a listener bound to port 0.

pub mod backend;
pub mod connection;
pub mod dialect;
pub mod prepared;
pub mod processlist;
pub mod server;
pub mod session;
pub mod show;
pub mod split;
pub mod sysvars;
pub mod wire;

pub use server::{ServerOptions, run};
