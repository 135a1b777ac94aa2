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
//!
//! At scale (migration 8), what the dashboard counts is kept in the database inside the
//! transaction that changes it — each server's latest state, the counts by state per
//! organisation and for the fleet, the exposure curve per organisation and day — so the
//! overview and organisation pages do work bounded by their page, not by the fleet. The
//! benchmark (`examples/serve-bench.rs`, `bench/serve.sh`; figures in `bench/README.md`) loads
//! 60,000 organisations, 250,000 servers, 1,000,000 probe rows and 10,000 scan results.

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
