//! The MySQL client/server protocol: packet framing, the connection
//! handshake, and result-set encoding. Packet layouts come from
//! `mysql_common` where it provides them (handshake, auth switch, column
//! definitions, ERR); framing, OK/EOF and row encoding are written here
//! because the server side needs control over every byte.

pub mod codes;
pub mod handshake;
pub mod packet;
pub mod resultset;
pub mod values;
