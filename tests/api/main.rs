//! Integration tests: the real relay (HTTP server, sled store, workers) on
//! port 0, driven through the sandbox platform, a fake Telegram Bot API and
//! fake WhatsApp gateways (WAHA, Evolution, Cloud API).

mod admin;
mod browser;
mod cli;
mod coordinators;
mod crash;
mod delivery;
mod deploy;
mod durability;
mod fakes;
mod helpers;
mod photos;
mod playground;
mod reload;
mod sandbox;
mod telegram;
mod threads;
mod webdriver;
mod whatsapp;
