//! Integration tests: the real relay (HTTP server, sled store, workers) on
//! port 0, driven through the sandbox platform and a fake Telegram API.

mod cli;
mod crash;
mod delivery;
mod durability;
mod helpers;
mod reload;
mod sandbox;
mod telegram;
