//! buurtrelay: a relay bot for neighbourhood-watch chat groups.
//!
//! Data flow (see DESIGN.md): platform webhook → [`http`] → [`platform`]
//! adapter (verify + parse) → [`ingest`] (dedup, [`protocol`] check,
//! [`relay`] decision, one atomic [`store`] write) → 200 OK → [`delivery`]
//! workers send through the platform adapters.

pub mod config;
pub mod corrections;
pub mod delivery;
pub mod failpoint;
pub mod http;
pub mod ingest;
pub mod message;
pub mod platform;
pub mod privacy;
pub mod protocol;
pub mod relay;
pub mod routing;
pub mod runtime;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod thread_map;
pub mod time;
