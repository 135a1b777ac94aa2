//! exhunt serve: the fleet view for MSSPs and CERTs.
//!
//! Many organisations, one database, no leaks between them. This crate is the library behind
//! `exhunt serve`: storage on SQLite or PostgreSQL ([`db`]), organisation scopes and the
//! assignment of network observations to organisations ([`scope`]), ingest of exhunt scan
//! results, exhunt probe rows and Shadowserver `scan_exchange` reports ([`ingest`]), tenancy
//! ([`tenancy`]), the store's operations ([`store`]), the JSON API ([`api`]), the dashboard
//! ([`web`]) and the listening server ([`server`], HTTPS through [`tls`]).
//!
//! It depends on the model and the renderers only, never on the detection engine: a server
//! that stores results has no business linking YARA.

pub mod api;
pub mod db;
pub mod demo;
pub mod error;
pub mod escalate;
pub mod ingest;
pub mod notify;
pub mod password;
pub mod proxy;
pub mod scope;
pub mod server;
pub mod sheet;
pub mod store;
pub mod templates;
pub mod tenancy;
pub mod tls;
pub mod users;
pub mod web;

pub use error::{Error, Result};
pub use server::Server;
pub use store::Store;
pub use tenancy::{Caller, Role};
