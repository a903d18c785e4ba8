//! Integration tests: the real relay (HTTP server, sled store, workers) on
//! port 0, driven through the sandbox platform and a fake Telegram API.

mod admin;
mod browser;
mod cli;
mod durability;
mod helpers;
mod playground;
mod reload;
mod sandbox;
mod telegram;
mod webdriver;
