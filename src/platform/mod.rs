//! Chat platforms behind one trait. Adding a platform is one new file here
//! and one arm in [`build`].
//!
//! An adapter does two things: turn a webhook request into [`Inbound`]
//! events (after checking its authentication, in constant time), and send an
//! [`Outbound`] message, classifying failures so the delivery workers know
//! whether to retry, wait, or give up.

pub mod evolution;
pub mod sandbox;
pub mod telegram;
pub mod waha;
pub mod whatsapp;
pub mod whatsapp_cloud;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::HeaderMap;

use crate::config::{Account, ChatId, PlatformKind};
use crate::message::{Inbound, MediaFile, MediaRef, Outbound, Sent};
use crate::store::{SandboxChats, Store};

/// Why a webhook request was refused. Each variant names its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// 401: the secret header is missing or wrong.
    #[error("missing or wrong webhook secret")]
    Unauthorized,
    /// 400: the body is not what the platform sends.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// 403: a verification handshake with a wrong or missing token.
    #[error("verification token does not match")]
    Forbidden,
}

/// Why a send failed, as the delivery workers need to know it.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The platform asked us to wait before sending to this chat again
    /// (HTTP 429, `retry_after`).
    #[error("rate limited; retry after {0:?}")]
    RateLimited(Duration),
    /// The platform asked us to wait before sending anything from this account.
    #[error("account rate limited; retry after {0:?}")]
    AccountRateLimited(Duration),
    /// Worth retrying: 5xx, timeout, connection error.
    #[error("transient: {0}")]
    Transient(String),
    /// Retrying cannot help (bot removed from the chat, chat not found, ...).
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A request to a platform that got no HTTP answer, said the way an operator
/// reads it: `telegram: connection refused`, `waha: DNS lookup failed (...)`,
/// `cloud api: TLS handshake failed (...)`, `evolution: timed out`. Never the
/// URL (Telegram's holds the bot token). Always worth a retry.
pub fn transport_error(platform: &str, e: reqwest::Error) -> SendError {
    let e = e.without_url();
    SendError::Transient(format!("{platform}: {}", describe_transport(&e)))
}

fn describe_transport(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut causes: Vec<String> = Vec::new();
    let mut io_kind = None;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        causes.push(s.to_string());
        source = s.source();
    }
    let all = causes.join(": ").to_lowercase();
    let innermost = causes.last().cloned().unwrap_or_default();
    if e.is_timeout() || io_kind == Some(std::io::ErrorKind::TimedOut) {
        "timed out (no answer within delivery.send_timeout)".to_string()
    } else if io_kind == Some(std::io::ErrorKind::ConnectionRefused) {
        "connection refused (is the platform's api_url right and its server running?)".to_string()
    } else if all.contains("dns error") || all.contains("failed to lookup address") {
        format!("DNS lookup failed ({innermost})")
    } else if all.contains("tls")
        || all.contains("certificate")
        || all.contains("handshake")
        || all.contains("corrupt message")
    {
        format!("TLS handshake failed ({innermost})")
    } else if io_kind == Some(std::io::ErrorKind::ConnectionReset) {
        "connection reset by the platform".to_string()
    } else if e.is_connect() {
        format!("cannot connect ({innermost})")
    } else if e.is_body() || e.is_decode() {
        format!("the answer could not be read ({innermost})")
    } else if innermost.is_empty() {
        e.to_string()
    } else {
        format!("{e} ({innermost})")
    }
}

/// Why a copy could not be edited or deleted.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The platform (or this message: too old, not ours) does not allow it;
    /// the relay posts a correction or retraction as a reply instead.
    #[error("not supported by the platform")]
    NotSupported,
    /// The request failed; retried, waited for or given up as for a send.
    #[error(transparent)]
    Failed(#[from] SendError),
}

#[async_trait]
pub trait Platform: Send + Sync {
    fn kind(&self) -> PlatformKind;

    /// The user id our own account posts under, when known: messages from
    /// it are never relayed again.
    fn self_id(&self) -> Option<String>;

    /// Verifies and parses one webhook request.
    fn parse_webhook(&self, headers: &HeaderMap, body: &[u8])
    -> Result<Vec<Inbound>, WebhookError>;

    /// Answers `GET /webhooks/{account}` with these query parameters: the
    /// subscription handshake of platforms that have one (WhatsApp Cloud
    /// API). `None`: this platform has no handshake (404). `Some(Ok(body))`
    /// is answered 200 as text/plain.
    fn verify_handshake(
        &self,
        _query: &HashMap<String, String>,
    ) -> Option<Result<String, WebhookError>> {
        None
    }

    /// The phone JID (`32475123456@c.us`) of a WhatsApp `@lid` member, when
    /// the gateway can look it up (WAHA). Default: it cannot. Called by the
    /// ingest only for a sender it cannot match otherwise; bounded by a
    /// short timeout, `None` on any failure.
    async fn phone_of_lid(&self, _lid: &str) -> Option<String> {
        None
    }

    /// The bytes of a photo this platform delivered (see [`MediaRef`]), at
    /// most `max_bytes`. [`SendError::Permanent`] when it cannot be had
    /// (gone, too large, not supported: the copy then goes as text),
    /// [`SendError::Transient`] when a retry may help. Default: not
    /// supported.
    async fn fetch_media(
        &self,
        _media: &MediaRef,
        _max_bytes: u64,
    ) -> Result<MediaFile, SendError> {
        Err(SendError::Permanent(format!(
            "{} cannot fetch media",
            self.kind()
        )))
    }

    /// This platform can post `media` without its bytes (Telegram: a
    /// `file_id` of the same bot).
    fn knows_media(&self, _media: &MediaRef) -> bool {
        false
    }

    /// Posts a photo with `msg.text` as its caption: `file` when given,
    /// else `media` by reference (only when [`Self::knows_media`]).
    /// [`SendError::Permanent`] for a photo the platform will not take (the
    /// copy then goes as text). Default: this platform posts no photos.
    async fn send_photo(
        &self,
        _msg: &Outbound,
        _media: &MediaRef,
        _file: Option<&MediaFile>,
    ) -> Result<Sent, SendError> {
        Err(SendError::Permanent(format!(
            "{} posts no photos",
            self.kind()
        )))
    }

    /// Sends one message.
    async fn send(&self, msg: &Outbound) -> Result<Sent, SendError>;

    /// Replaces the text of message `message_id`, which the relay posted in
    /// `msg.chat`, with `msg.text`. Default: not supported (the relay posts
    /// a correction as a reply instead).
    async fn edit(&self, _msg: &Outbound, _message_id: &str) -> Result<(), ChangeError> {
        Err(ChangeError::NotSupported)
    }

    /// Deletes message `message_id`, which the relay posted in `msg.chat`; a
    /// message that is gone already counts as deleted. Default: not
    /// supported (the relay posts a retraction as a reply instead).
    async fn delete(&self, _msg: &Outbound, _message_id: &str) -> Result<(), ChangeError> {
        Err(ChangeError::NotSupported)
    }
}

/// Builds the adapter for one configured account. `feed` is where sandbox
/// accounts announce what they post (other platforms ignore it).
pub fn build(
    account: &Account,
    http: reqwest::Client,
    store: Arc<dyn Store>,
    chats: Arc<dyn SandboxChats>,
    feed: &sandbox::SandboxFeed,
) -> Arc<dyn Platform> {
    match account.platform {
        PlatformKind::Sandbox => Arc::new(sandbox::Sandbox::new(account, chats, feed.clone())),
        PlatformKind::Telegram => Arc::new(telegram::Telegram::new(account, http)),
        PlatformKind::Waha => Arc::new(waha::Waha::new(account, http, store)),
        PlatformKind::Evolution => Arc::new(evolution::Evolution::new(account, http, store)),
        PlatformKind::WhatsappCloud => Arc::new(whatsapp_cloud::WhatsappCloud::new(account, http)),
    }
}

/// The store key that marks a text one of our accounts posts in a chat.
///
/// WhatsApp shows other members no "sent by a program" mark: when several
/// linked numbers sit in one group (one per coordinator), the copy that one
/// of them posts reaches the others as an ordinary member's message. So the
/// adapters of such platforms record this key *before* they send, and ingest
/// drops any message that matches it: a copy is never relayed again, however
/// fast the other sessions are (no loops). The text is hashed: the key
/// holds no message text, and is purged with the other marks.
pub fn own_copy_key(platform: PlatformKind, chat: &ChatId, text: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(text.trim().as_bytes());
    format!(
        "own|{}|{}|{}",
        platform.chat_space(),
        chat,
        hex::encode(&h[..16])
    )
}

/// Downloads a file (a photo) of at most `max` bytes. 404 and 410: gone
/// for good; 408, 429 and 5xx: worth a retry; a larger file is refused
/// without reading it all.
pub async fn download(
    req: reqwest::RequestBuilder,
    max: u64,
    what: &str,
) -> Result<Vec<u8>, SendError> {
    let mut resp = req.send().await.map_err(|e| transport_error(what, e))?;
    let status = resp.status();
    if !status.is_success() {
        let why = format!("{what}: HTTP {}", status.as_u16());
        return Err(match status.as_u16() {
            408 | 429 | 500..=599 => SendError::Transient(why),
            _ => SendError::Permanent(why),
        });
    }
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(SendError::Permanent(format!(
            "{what}: larger than {max} bytes"
        )));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(what, e))? {
        if bytes.len() as u64 + chunk.len() as u64 > max {
            return Err(SendError::Permanent(format!(
                "{what}: larger than {max} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Err(SendError::Permanent(format!("{what}: empty file")));
    }
    Ok(bytes)
}

/// A `multipart/form-data` body of text fields and one file, and its
/// content type (Telegram's sendPhoto, the Cloud API's media upload).
pub fn multipart(fields: &[(&str, String)], file: (&str, &str, &MediaFile)) -> (String, Vec<u8>) {
    let boundary = format!(
        "buurtrelay{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    );
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    let (name, filename, f) = file;
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {}\r\n\r\n",
            f.mimetype
        )
        .as_bytes(),
    );
    body.extend_from_slice(&f.bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The first `max` characters of a caption (Telegram and the Cloud API take
/// 1024), with an ellipsis when it was cut.
pub fn caption(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut c: String = text.chars().take(max.saturating_sub(1)).collect();
    c.push('…');
    c
}

/// Compares two secrets in constant time.
pub fn secret_matches(given: Option<&[u8]>, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    match given {
        Some(g) => g.ct_eq(expected.as_bytes()).into(),
        None => false,
    }
}

/// For the parsers' no-panic tests: `base` with 1 to 5 random edits (a byte
/// changed, the tail cut off, a JSON-ish byte inserted).
#[cfg(test)]
pub(crate) fn mutated(base: &[u8], rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..rng.usize(1..6) {
        if b.is_empty() {
            break;
        }
        match rng.u8(0..3) {
            0 => {
                let i = rng.usize(0..b.len());
                b[i] = rng.u8(..);
            }
            1 => b.truncate(rng.usize(0..b.len())),
            _ => {
                let i = rng.usize(0..=b.len());
                let pool = b"{}[]\":,-0123456789e@_";
                b.insert(i, pool[rng.usize(0..pool.len())]);
            }
        }
    }
    b
}

#[cfg(test)]
mod transport_tests {
    use super::*;

    async fn fail(url: &str) -> String {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let e = client.get(url).send().await.unwrap_err();
        transport_error("telegram", e).to_string()
    }

    #[tokio::test]
    async fn a_refused_connection_is_called_so_with_the_platform_name() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let why = fail(&format!("http://127.0.0.1:{port}/botSECRET/sendMessage")).await;
        assert!(why.contains("telegram: connection refused"), "{why}");
        assert!(!why.contains("SECRET"), "{why}");
    }

    #[tokio::test]
    async fn a_platform_that_never_answers_is_a_timeout() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        // Accepts and holds the connection, says nothing.
        let held = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(s);
        });
        let why = fail(&format!("http://127.0.0.1:{port}/")).await;
        assert!(why.contains("telegram: timed out"), "{why}");
        held.abort();
    }

    #[tokio::test]
    async fn a_server_that_does_not_speak_tls_is_a_tls_failure() {
        use tokio::io::AsyncWriteExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        });
        let why = fail(&format!("https://127.0.0.1:{port}/")).await;
        assert!(why.contains("telegram: TLS handshake failed"), "{why}");
        server.abort();
    }

    #[tokio::test]
    async fn an_unknown_host_is_a_dns_failure() {
        let why = fail("http://no-such-host.invalid/").await;
        assert!(
            why.contains("telegram: DNS lookup failed") || why.contains("telegram: timed out"),
            "{why}"
        );
    }
}
