//! Keyed hashes of senders: what logs and the store keep instead of a
//! platform user id (a phone number on WhatsApp and Signal).
//!
//! An unkeyed hash of a phone number is reversed by hashing every number of
//! a country (minutes on a laptop). These are HMAC-SHA256 under a key of the
//! installation: 32 random bytes in `DATA_DIR/sender-hash.key` (created at
//! the first start, mode 0600), or `server.sender_hash_key` in the config
//! (a secret, e.g. `"env:BUURTRELAY_SENDER_HASH_KEY"`), which several relays
//! sharing one database must set to the same value.
//!
//! The key is installed once per process at start-up ([`install`]); a
//! process that never installs one (check-config, simulate, unit tests)
//! hashes under a random key of its own. Hashes made before keyed hashing
//! (reminder cooldowns, the sender of a held alert) no longer match: a
//! cooldown simply expires and is purged, a held alert is released by its
//! timer instead of by its sender's follow-up.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The file in the data directory that holds the key (hex).
pub const KEY_FILE: &str = "sender-hash.key";

/// The key of one installation.
#[derive(Clone)]
pub struct SenderKey(Vec<u8>);

impl std::fmt::Debug for SenderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SenderKey(***)")
    }
}

impl SenderKey {
    /// A key given in the config (at least 16 characters).
    pub fn from_secret(secret: &str) -> anyhow::Result<SenderKey> {
        if secret.len() < 16 {
            anyhow::bail!("server.sender_hash_key must be at least 16 characters");
        }
        Ok(SenderKey(secret.as_bytes().to_vec()))
    }

    /// The key in `dir`, made (32 random bytes, mode 0600) if there is none.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<SenderKey> {
        let path = dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .ok()
                    .filter(|b| b.len() >= 16)
                    .with_context(|| {
                        format!(
                            "{} is not a key (64 hex digits); restore it from a backup, or delete it to start new sender hashes",
                            path.display()
                        )
                    })?;
                Ok(SenderKey(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                random_bytes(&mut key)?;
                write_private(&path, hex::encode(key).as_bytes())?;
                Ok(SenderKey(key.to_vec()))
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// HMAC-SHA256 of `data` under this key.
    pub fn mac(&self, data: &str) -> [u8; 32] {
        // HMAC takes a key of any length: new_from_slice cannot fail.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

static KEY: OnceLock<SenderKey> = OnceLock::new();

/// Makes `key` the one this process hashes senders with. The first key
/// installed stays (one relay per process; tests that start several share
/// the first one's).
pub fn install(key: SenderKey) {
    let _ = KEY.set(key);
}

/// The key of this process: the installed one, or a random one.
pub fn key() -> &'static SenderKey {
    KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        if random_bytes(&mut k).is_err() {
            // No random source: still keyed, just not secret across runs.
            k = fastrand_bytes();
        }
        SenderKey(k.to_vec())
    })
}

fn fastrand_bytes() -> [u8; 32] {
    let mut k = [0u8; 32];
    for b in &mut k {
        *b = fastrand::u8(..);
    }
    k
}

fn random_bytes(buf: &mut [u8]) -> anyhow::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .context("cannot read /dev/urandom for the sender-hash key")
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_of_a_number_differs_between_installations_and_is_stable_within_one() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let number = "32475123456@c.us";
        let ka = SenderKey::load_or_create(a.path()).unwrap();
        let kb = SenderKey::load_or_create(b.path()).unwrap();
        assert_ne!(ka.mac(number), kb.mac(number));
        // A restart reads the same key: the same hash.
        let ka_again = SenderKey::load_or_create(a.path()).unwrap();
        assert_eq!(ka.mac(number), ka_again.mac(number));
        // And it is not the unkeyed hash an attacker would try.
        use sha2::Digest;
        assert_ne!(ka.mac(number).to_vec(), Sha256::digest(number).to_vec());
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        SenderKey::load_or_create(d.path()).unwrap();
        let mode = std::fs::metadata(d.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_key_file_stops_the_start_instead_of_changing_every_hash() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(KEY_FILE), "not hex").unwrap();
        let e = SenderKey::load_or_create(d.path()).unwrap_err().to_string();
        assert!(e.contains("is not a key"), "{e}");
    }

    #[test]
    fn a_key_from_the_config_is_used_as_given() {
        let k1 = SenderKey::from_secret("a long shared secret").unwrap();
        let k2 = SenderKey::from_secret("a long shared secret").unwrap();
        assert_eq!(k1.mac("x"), k2.mac("x"));
        assert!(SenderKey::from_secret("short").is_err());
    }
}
