//! Keybridge's HTTP front end: actix-web routes, configuration, and the command line.
//!
//! **Invariant:** this is the only crate that knows HTTP status codes, cookies and HTML.
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock)]

pub mod app;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod errors;
pub mod observe;
pub mod pages;
pub mod routes;
