//! What the WhatsApp adapters share: WAHA and Evolution are two gateways to
//! the same network (linked devices), and the Cloud API is Meta's official
//! door to it. Ids, signatures, timestamps and send failures look alike.
//!
//! Not a platform itself: `waha.rs`, `evolution.rs` and `whatsapp_cloud.rs`
//! are; this file keeps each of them to what is truly its own.

use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde_json::Value;

use super::{SendError, own_copy_key};
use crate::config::{ChatId, PlatformKind};
use crate::store::{IngestWrite, Store};

pub use crate::config::canonical_jid;

/// Chats that are never a neighbourhood group: status updates, broadcast
/// lists and channels.
pub fn relayable_chat(jid: &str) -> bool {
    !(jid == "status@broadcast" || jid.ends_with("@broadcast") || jid.ends_with("@newsletter"))
}

/// The part of a message id that names the message itself.
///
/// WAHA serializes a message id as `{fromMe}_{chat}_{id}[_{participant}]`
/// (`false_120363...@g.us_3EB0C7..._32475...@c.us`): the same message is
/// `true_...` for the linked number that wrote it and `false_...` for every
/// other one, and the participant may be spelled as a phone JID by one engine
/// and as a `@lid` by another. Evolution gives the bare id (`3EB0C7...`). The
/// bare id is what every gateway agrees on, so dedup uses it (with the chat);
/// WhatsApp ids carry 64 bits or more of randomness, so two authors in one
/// group never share one within the retention period.
pub fn message_key(platform: PlatformKind, message_id: &str) -> &str {
    if platform.chat_space() != "whatsapp" {
        return message_id;
    }
    let rest = message_id
        .strip_prefix("false_")
        .or_else(|| message_id.strip_prefix("true_"));
    match rest.and_then(|r| r.split_once('_')) {
        Some((_chat, tail)) => tail.split('_').next().unwrap_or(tail),
        None => message_id,
    }
}

/// Records, durably, that we are about to post `text` in `chat`, so the copy
/// is recognised when another linked number sees it (see [`own_copy_key`]).
/// Written before the send: a copy can never arrive before its mark.
pub async fn remember_own_copy(
    store: &dyn Store,
    platform: PlatformKind,
    chat: &ChatId,
    text: &str,
) -> Result<(), SendError> {
    let w = IngestWrite {
        dedup_key: own_copy_key(platform, chat, text),
        at_ms: crate::time::now_ms(),
        ..IngestWrite::default()
    };
    // A retry of the same entry finds the mark already there: that is fine.
    store
        .commit_ingest(&w)
        .await
        .map_err(|e| SendError::Transient(format!("cannot record our copy: {e}")))?;
    store
        .flush()
        .await
        .map_err(|e| SendError::Transient(format!("cannot record our copy: {e}")))
}

/// Seconds since the epoch as the gateways write them: a number (WAHA,
/// sometimes with a fraction), a string (Cloud API, Evolution v1) or a
/// protobuf Long `{low, high}` (raw Baileys).
pub fn unix_seconds(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse::<u64>().unwrap_or(0),
        Some(Value::Object(o)) => o.get("low").and_then(Value::as_u64).unwrap_or(0),
        _ => 0,
    }
}

/// Compares `HMAC-SHA512(key, body)` with a hex signature, in constant
/// time (WAHA's `X-Webhook-Hmac`).
pub fn hmac_sha512_matches(key: &[u8], body: &[u8], given_hex: Option<&str>) -> bool {
    let Some(given) = given_hex.and_then(|h| hex::decode(h.trim()).ok()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha512>::new_from_slice(key) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// Compares `HMAC-SHA256(key, body)` with a hex signature, in constant
/// time (the Cloud API's `X-Hub-Signature-256`, after `sha256=`).
pub fn hmac_sha256_matches(key: &[u8], body: &[u8], given_hex: Option<&str>) -> bool {
    let Some(given) = given_hex.and_then(|h| hex::decode(h.trim()).ok()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// A header's value as text, if it is there and readable.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Error text from a gateway, safe to store and log: at most 160
/// characters, and no long digit runs (phone numbers, group ids).
pub fn redact(s: &str) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 7 {
            out.push('…');
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in s.chars().take(160) {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

/// `Retry-After` in seconds, if the answer has one.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// How a self-hosted gateway's (WAHA, Evolution) HTTP failure is handled:
/// 429 waits as asked; 5xx, 408 and 422 (WAHA: the session is not connected
/// right now, e.g. the phone is offline or must be re-linked) are retried
/// with backoff until `delivery.max_age`; other 4xx (wrong key, unknown
/// session or chat, not a member) cannot be fixed by retrying.
pub fn gateway_error(
    gateway: &str,
    status: reqwest::StatusCode,
    retry: Option<Duration>,
    body: &[u8],
) -> SendError {
    let detail = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            let m = v
                .get("message")
                .or_else(|| v.pointer("/response/message"))
                .or_else(|| v.get("error"))?;
            Some(match m {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        })
        .unwrap_or_default();
    let why = redact(&format!("{gateway} HTTP {}: {detail}", status.as_u16()));
    match status.as_u16() {
        429 => SendError::RateLimited(retry.unwrap_or(Duration::from_secs(5))),
        408 | 422 | 500..=599 => SendError::Transient(why),
        _ => SendError::Permanent(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bare_message_id_is_the_same_for_every_linked_number() {
        let mine = "true_120363011111111111@g.us_3EB0C767D097B7C7C030_32475111111@c.us";
        let theirs = "false_120363011111111111@g.us_3EB0C767D097B7C7C030_123456789@lid";
        assert_eq!(
            message_key(PlatformKind::Waha, mine),
            "3EB0C767D097B7C7C030"
        );
        assert_eq!(
            message_key(PlatformKind::Waha, theirs),
            "3EB0C767D097B7C7C030"
        );
        assert_eq!(
            message_key(PlatformKind::Evolution, "3EB0C767D097B7C7C030"),
            "3EB0C767D097B7C7C030"
        );
        assert_eq!(
            message_key(PlatformKind::Waha, "false_32475111111@c.us_AAAA"),
            "AAAA"
        );
        // Other platforms' ids are kept whole.
        assert_eq!(
            message_key(PlatformKind::Telegram, "false_x_y"),
            "false_x_y"
        );
    }

    #[test]
    fn status_updates_broadcasts_and_channels_are_not_relayable() {
        assert!(!relayable_chat("status@broadcast"));
        assert!(!relayable_chat("120363000000000000@newsletter"));
        assert!(relayable_chat("120363011111111111@g.us"));
    }

    #[test]
    fn timestamps_are_read_in_every_spelling() {
        use serde_json::json;
        assert_eq!(unix_seconds(Some(&json!(1764300000))), 1764300000);
        assert_eq!(unix_seconds(Some(&json!(1764300000.853))), 1764300000);
        assert_eq!(unix_seconds(Some(&json!("1764300000"))), 1764300000);
        assert_eq!(
            unix_seconds(Some(
                &json!({"low": 1764300000, "high": 0, "unsigned": false})
            )),
            1764300000
        );
        assert_eq!(unix_seconds(Some(&json!(-5))), 0);
        assert_eq!(unix_seconds(None), 0);
    }

    #[test]
    fn a_gateway_error_keeps_no_phone_number() {
        let body = br#"{"status":400,"error":"Bad Request","response":{"message":[{"exists":false,"jid":"32475111111@s.whatsapp.net","number":"32475111111"}]}}"#;
        let e = gateway_error("evolution", reqwest::StatusCode::BAD_REQUEST, None, body);
        let SendError::Permanent(why) = e else {
            panic!("{e:?}")
        };
        assert!(!why.contains("32475111111"), "{why}");
        assert!(why.contains("HTTP 400"), "{why}");
    }

    #[test]
    fn a_busy_or_disconnected_gateway_is_retried_and_a_wrong_key_is_not() {
        let s = |c: u16| reqwest::StatusCode::from_u16(c).unwrap();
        assert!(matches!(
            gateway_error("waha", s(429), Some(Duration::from_secs(3)), b""),
            SendError::RateLimited(d) if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            gateway_error(
                "waha",
                s(422),
                None,
                br#"{"statusCode":422,"message":"Session status is not as expected"}"#
            ),
            SendError::Transient(_)
        ));
        assert!(matches!(
            gateway_error("waha", s(502), None, b"<html>"),
            SendError::Transient(_)
        ));
        assert!(matches!(
            gateway_error("waha", s(401), None, b"{}"),
            SendError::Permanent(_)
        ));
    }
}
