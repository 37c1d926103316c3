//! Sealing secrets at rest with AES-256-GCM.
//!
//! A sealed value is `v1.<key id>.<nonce b64>.<ciphertext b64>`: the key id
//! travels with the ciphertext so several keys can be configured (the first
//! seals, all open) and `encryption-keys rotate` can find what to re-seal.
//! The associated data names the tenant and the column, so a ciphertext
//! copied into another tenant's row or another column fails to open.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};

use crate::ids::TenantId;

const FORMAT: &str = "v1";

/// Which stored column a secret lives in. Part of the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedColumn {
    AccessToken,
    RefreshToken,
    SdkKey,
    MobileKey,
}

impl SealedColumn {
    pub fn name(self) -> &'static str {
        match self {
            Self::AccessToken => "connections.access_token",
            Self::RefreshToken => "connections.refresh_token",
            Self::SdkKey => "environments.sdk_key",
            Self::MobileKey => "environments.mobile_key",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed with key '{0}', which is not configured")]
    UnknownKey(String),
    #[error("sealed value failed authentication (wrong key, tenant or column, or tampered)")]
    Authentication,
    #[error("sealing a value failed")]
    Seal,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    #[error("no encryption key configured")]
    Empty,
    #[error("entry {0} is not of the form key_id:base64(32 bytes)")]
    Shape(usize),
    /// By position: a misplaced colon could make the "id" key material.
    #[error("entry {0}: the key id must be 1-32 characters of letters, digits, '_' or '-'")]
    BadId(usize),
    #[error("key '{0}' is not base64 of exactly 32 bytes")]
    BadKey(String),
    #[error("key id '{0}' appears twice")]
    Duplicate(String),
}

struct SealingKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The configured keys. Debug never shows key material.
pub struct Keyring {
    keys: Vec<SealingKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

impl Keyring {
    /// Parses `key_id:base64(32 bytes)[,key_id:base64(32 bytes)...]`.
    pub fn parse(spec: &str) -> Result<Self, KeyringError> {
        let mut keys: Vec<SealingKey> = Vec::new();
        for (index, entry) in spec
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (id, material) = entry
                .split_once(':')
                .ok_or(KeyringError::Shape(index + 1))?;
            let id_ok = !id.is_empty()
                && id.len() <= 32
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !id_ok {
                return Err(KeyringError::BadId(index + 1));
            }
            let bytes = STANDARD
                .decode(material.trim())
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| KeyringError::BadKey(id.to_owned()))?;
            if keys.iter().any(|k| k.id == id) {
                return Err(KeyringError::Duplicate(id.to_owned()));
            }
            let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes));
            keys.push(SealingKey {
                id: id.to_owned(),
                cipher,
            });
        }
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(Self { keys })
    }

    /// A fresh random key in the configuration format, for `demo` and docs.
    pub fn generate_spec(id: &str) -> String {
        let key = Aes256Gcm::generate_key(OsRng);
        format!("{id}:{}", STANDARD.encode(key))
    }

    pub fn current_key_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    pub fn seal(
        &self,
        tenant: &TenantId,
        column: SealedColumn,
        plaintext: &SecretString,
    ) -> Result<String, CryptoError> {
        let key = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = associated_data(tenant, column);
        // Not expected with a valid key and an in-memory buffer; if it ever
        // happens it is an error, never an empty ciphertext stored as a token.
        let ciphertext = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.expose_secret().as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Seal)?;
        Ok(format!(
            "{FORMAT}.{}.{}.{}",
            key.id,
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(ciphertext)
        ))
    }

    pub fn open(
        &self,
        tenant: &TenantId,
        column: SealedColumn,
        sealed: &str,
    ) -> Result<SecretString, CryptoError> {
        let parts = SealedParts::parse(sealed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == parts.key_id)
            .ok_or_else(|| CryptoError::UnknownKey(parts.key_id.to_owned()))?;
        let aad = associated_data(tenant, column);
        let plaintext = key
            .cipher
            .decrypt(
                Nonce::from_slice(&parts.nonce),
                Payload {
                    msg: &parts.ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Authentication)?;
        let text = String::from_utf8(plaintext).map_err(|_| CryptoError::Malformed)?;
        Ok(SecretString::from(text))
    }

    /// True when the value was sealed with a key other than the current one.
    pub fn needs_reseal(&self, sealed: &str) -> bool {
        SealedParts::parse(sealed).map_or(true, |p| p.key_id != self.current_key_id())
    }

    /// Opens with whichever key sealed it and seals again under the current key.
    pub fn reseal(
        &self,
        tenant: &TenantId,
        column: SealedColumn,
        sealed: &str,
    ) -> Result<String, CryptoError> {
        let plaintext = self.open(tenant, column, sealed)?;
        self.seal(tenant, column, &plaintext)
    }
}

fn associated_data(tenant: &TenantId, column: SealedColumn) -> String {
    format!("ld-eaas/{FORMAT}/{}/{}", column.name(), tenant.as_str())
}

struct SealedParts<'a> {
    key_id: &'a str,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl<'a> SealedParts<'a> {
    fn parse(sealed: &'a str) -> Result<Self, CryptoError> {
        let mut parts = sealed.split('.');
        let (Some(FORMAT), Some(key_id), Some(nonce), Some(ciphertext), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(CryptoError::Malformed);
        };
        let nonce = URL_SAFE_NO_PAD
            .decode(nonce)
            .map_err(|_| CryptoError::Malformed)?;
        if nonce.len() != 12 {
            return Err(CryptoError::Malformed);
        }
        let ciphertext = URL_SAFE_NO_PAD
            .decode(ciphertext)
            .map_err(|_| CryptoError::Malformed)?;
        Ok(Self {
            key_id,
            nonce,
            ciphertext,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn a_sealed_value_round_trips_and_hides_the_plaintext() {
        let ring = Keyring::parse(&Keyring::generate_spec("k1")).unwrap();
        let sealed = ring
            .seal(
                &tenant("t1"),
                SealedColumn::AccessToken,
                &secret("api-token-123"),
            )
            .unwrap();
        assert!(!sealed.contains("api-token-123"));
        assert!(sealed.starts_with("v1.k1."));
        let opened = ring
            .open(&tenant("t1"), SealedColumn::AccessToken, &sealed)
            .unwrap();
        assert_eq!(opened.expose_secret(), "api-token-123");
    }

    #[test]
    fn sealing_twice_uses_a_fresh_nonce() {
        let ring = Keyring::parse(&Keyring::generate_spec("k1")).unwrap();
        let a = ring
            .seal(&tenant("t1"), SealedColumn::SdkKey, &secret("same"))
            .unwrap();
        let b = ring
            .seal(&tenant("t1"), SealedColumn::SdkKey, &secret("same"))
            .unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_wrong_key_fails_to_open() {
        let ring = Keyring::parse(&Keyring::generate_spec("k1")).unwrap();
        let other = Keyring::parse(&Keyring::generate_spec("k1")).unwrap();
        let sealed = ring
            .seal(&tenant("t1"), SealedColumn::AccessToken, &secret("s"))
            .unwrap();
        assert_eq!(
            other
                .open(&tenant("t1"), SealedColumn::AccessToken, &sealed)
                .unwrap_err(),
            CryptoError::Authentication
        );
        let unknown = Keyring::parse(&Keyring::generate_spec("k2")).unwrap();
        assert_eq!(
            unknown
                .open(&tenant("t1"), SealedColumn::AccessToken, &sealed)
                .unwrap_err(),
            CryptoError::UnknownKey("k1".into())
        );
    }

    #[test]
    fn a_tampered_byte_fails_to_open() {
        let ring = Keyring::parse(&Keyring::generate_spec("k1")).unwrap();
        let sealed = ring
            .seal(
                &tenant("t1"),
                SealedColumn::AccessToken,
                &secret("secret-value"),
            )
            .unwrap();
        let (head, ct) = sealed.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(ct).unwrap();
        bytes[0] ^= 0x01;
        let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(
            ring.open(&tenant("t1"), SealedColumn::AccessToken, &tampered)
                .unwrap_err(),
            CryptoError::Authentication
        );
    }

    #[test]
    fn another_tenant_or_column_fails_to_open() {
        let ring = Keyring::parse(&Keyring::generate_spec("k1")).unwrap();
        let sealed = ring
            .seal(&tenant("t1"), SealedColumn::AccessToken, &secret("s"))
            .unwrap();
        assert!(
            ring.open(&tenant("t2"), SealedColumn::AccessToken, &sealed)
                .is_err()
        );
        assert!(
            ring.open(&tenant("t1"), SealedColumn::RefreshToken, &sealed)
                .is_err()
        );
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old = Keyring::generate_spec("old");
        let new = Keyring::generate_spec("new");
        let before = Keyring::parse(&old).unwrap();
        let sealed_old = before
            .seal(&tenant("t"), SealedColumn::SdkKey, &secret("x"))
            .unwrap();
        let both = Keyring::parse(&format!("{new},{old}")).unwrap();
        assert_eq!(both.current_key_id(), "new");
        assert!(both.needs_reseal(&sealed_old));
        let resealed = both
            .reseal(&tenant("t"), SealedColumn::SdkKey, &sealed_old)
            .unwrap();
        assert!(!both.needs_reseal(&resealed));
        let only_new = Keyring::parse(&new).unwrap();
        assert_eq!(
            only_new
                .open(&tenant("t"), SealedColumn::SdkKey, &resealed)
                .unwrap()
                .expose_secret(),
            "x"
        );
    }

    #[test]
    fn bad_key_configuration_is_explained() {
        assert_eq!(Keyring::parse("").unwrap_err(), KeyringError::Empty);
        assert_eq!(
            Keyring::parse("nocolon").unwrap_err(),
            KeyringError::Shape(1)
        );
        assert_eq!(
            Keyring::parse("k1:c2hvcnQ=").unwrap_err(),
            KeyringError::BadKey("k1".into())
        );
        let k = Keyring::generate_spec("k1");
        assert_eq!(
            Keyring::parse(&format!("{k},{k}")).unwrap_err(),
            KeyringError::Duplicate("k1".into())
        );
    }
}
