//! The IAM's RSA keys: the cluster's token signing key (generated once, kept in the store
//! sealed, shared by every master so a token outlives a failover), and the public keys of
//! service accounts, which sign their own login tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rsa::pkcs8::{DecodePublicKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;

use crate::api::VerifyingKey;

/// The size of the cluster's signing key.
pub const SIGNING_KEY_BITS: usize = 2048;
/// The smallest service-account key accepted.
pub const MIN_ACCOUNT_KEY_BITS: usize = 2048;

/// Why a key cannot be made, read or used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

/// The cluster's token signing key.
pub struct SigningKey {
    pair: RsaKeyPair,
    public: VerifyingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private half.
        write!(f, "SigningKey({:?})", self.public.kid)
    }
}

impl SigningKey {
    /// A new key, and its PKCS#8 DER to keep.
    pub fn generate() -> Result<(SigningKey, Vec<u8>), KeyError> {
        let mut rng = rsa::rand_core::OsRng;
        let key = rsa::RsaPrivateKey::new(&mut rng, SIGNING_KEY_BITS)
            .map_err(|e| KeyError(format!("cannot generate the signing key: {e}")))?;
        let der = key
            .to_pkcs8_der()
            .map_err(|e| KeyError(format!("cannot encode the signing key: {e}")))?;
        let der = der.as_bytes().to_vec();
        Ok((SigningKey::from_pkcs8(&der)?, der))
    }

    /// The key kept as PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
        let pair = RsaKeyPair::from_pkcs8(der)
            .map_err(|e| KeyError(format!("the signing key is not valid: {e}")))?;
        let parts = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
        let (n, e) = (parts.n, parts.e);
        // The key's id as DC/OS' IAM names it in its JWKS: the SHA-256 (hex) of the decimal
        // exponent, the decimal modulus and `RSA`, so every master names it alike.
        let decimal = |b: &[u8]| rsa::BigUint::from_bytes_be(b).to_string();
        let named = format!("{}{}RSA", decimal(&e), decimal(&n));
        let digest = ring::digest::digest(&ring::digest::SHA256, named.as_bytes());
        let kid: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Ok(SigningKey {
            pair,
            public: VerifyingKey::from_components(Some(kid), n, e),
        })
    }

    /// Its public half.
    pub fn public(&self) -> &VerifyingKey {
        &self.public
    }

    /// A token of `claims`, RS256. Its header names no key, as DC/OS' tokens do not: the
    /// cluster has one.
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, KeyError> {
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256"});
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signed.as_bytes(),
                &mut sig,
            )
            .map_err(|_| KeyError("cannot sign a token".into()))?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// A new RSA key pair for a service account, as PEM: the private key (PKCS#8) and the
/// public key (SubjectPublicKeyInfo), which the IAM is given.
pub fn generate_account_pair() -> Result<(String, String), KeyError> {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let mut rng = rsa::rand_core::OsRng;
    let key = rsa::RsaPrivateKey::new(&mut rng, SIGNING_KEY_BITS)
        .map_err(|e| KeyError(format!("cannot generate a key: {e}")))?;
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError(format!("cannot encode the key: {e}")))?;
    let public = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError(format!("cannot encode the key: {e}")))?;
    Ok((private.to_string(), public))
}

/// A login token for service account `uid`, signed by its private key (PEM, PKCS#8 or
/// PKCS#1), valid for `secs`: what `POST /acs/api/v1/auth/login` takes as `{uid, token}`.
pub fn account_login_token(uid: &str, private_pem: &str, secs: u64) -> Result<String, KeyError> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_pem.trim())
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(private_pem.trim()))
        .map_err(|_| KeyError("the private key is not an RSA private key in PEM".into()))?;
    let der = key
        .to_pkcs8_der()
        .map_err(|e| KeyError(format!("cannot encode the key: {e}")))?;
    let signer = SigningKey::from_pkcs8(der.as_bytes())?;
    signer.sign(&serde_json::json!({"uid": uid, "exp": crate::api::now_secs() + secs}))
}

/// A service account's public key from its PEM (`PUBLIC KEY`): RSA, at least
/// [`MIN_ACCOUNT_KEY_BITS`].
pub fn account_key(pem: &str) -> Result<VerifyingKey, KeyError> {
    // Only SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`), as DC/OS' IAM takes it.
    let key = rsa::RsaPublicKey::from_public_key_pem(pem.trim()).map_err(|_| {
        KeyError("public_key must be an RSA public key in PEM (BEGIN PUBLIC KEY)".into())
    })?;
    if key.size() * 8 < MIN_ACCOUNT_KEY_BITS {
        return Err(KeyError(format!(
            "public_key has {} bits; at least {MIN_ACCOUNT_KEY_BITS} are needed",
            key.size() * 8
        )));
    }
    Ok(VerifyingKey::from_components(
        None,
        key.n().to_bytes_be(),
        key.e().to_bytes_be(),
    ))
}

/// Seals the signing key for the store with AES-256-GCM under `secret` (derived from what
/// only masters hold), so a reader of the store cannot forge tokens.
pub fn seal(secret: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeyError> {
    let key = sealing_key(secret)?;
    let mut nonce = [0u8; aead::NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| KeyError("no randomness".into()))?;
    let mut data = plain.to_vec();
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::empty(),
        &mut data,
    )
    .map_err(|_| KeyError("cannot seal the signing key".into()))?;
    Ok([nonce.as_slice(), &data].concat())
}

/// Opens what [`seal`] sealed under the same `secret`.
pub fn open(secret: &[u8], sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
    let key = sealing_key(secret)?;
    if sealed.len() < aead::NONCE_LEN {
        return Err(KeyError("the sealed signing key is truncated".into()));
    }
    let (nonce, data) = sealed.split_at(aead::NONCE_LEN);
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce)
        .map_err(|_| KeyError("the sealed signing key is truncated".into()))?;
    let mut data = data.to_vec();
    let plain = key
        .open_in_place(nonce, aead::Aad::empty(), &mut data)
        .map_err(|_| {
            KeyError("the signing key in the store was sealed by another cluster secret".into())
        })?;
    Ok(plain.to_vec())
}

/// The key that authenticates the IAM's state in the store (HMAC-SHA-256), derived from
/// the same masters-only `secret` as the sealing key: a state that a reader of the store
/// (ZooKeeper is reachable from agents) wrote is refused.
pub fn state_key(secret: &[u8]) -> ring::hmac::Key {
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"dcos-rs iam state");
    let mut bytes = [0u8; 32];
    // HKDF-SHA-256 always yields 32 bytes.
    let _ = salt
        .extract(secret)
        .expand(&[b"hmac-sha256"], ring::hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut bytes));
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes)
}

fn sealing_key(secret: &[u8]) -> Result<aead::LessSafeKey, KeyError> {
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"dcos-rs iam signing key");
    let mut bytes = [0u8; 32];
    salt.extract(secret)
        .expand(&[b"aes-256-gcm"], ring::hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut bytes))
        .map_err(|_| KeyError("cannot derive the sealing key".into()))?;
    let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, &bytes)
        .map_err(|_| KeyError("cannot derive the sealing key".into()))?;
    Ok(aead::LessSafeKey::new(unbound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{verify, TokenError};

    #[test]
    fn tokens_verify_with_the_public_key_only() {
        let (key, der) = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8(&der).unwrap();
        assert_eq!(key.public(), again.public());
        let now = crate::api::now_secs();
        let token = key
            .sign(&serde_json::json!({"uid": "alice", "exp": now + 60}))
            .unwrap();
        let claims = verify(&token, &[again.public().clone()], now).unwrap();
        assert_eq!(claims["uid"], "alice");
        // Expired, signed by another key, or altered: refused.
        let old = key
            .sign(&serde_json::json!({"uid": "a", "exp": now - 1}))
            .unwrap();
        assert_eq!(
            verify(&old, &[key.public().clone()], now),
            Err(TokenError::Expired)
        );
        let (other, _) = SigningKey::generate().unwrap();
        assert_eq!(
            verify(&token, &[other.public().clone()], now),
            Err(TokenError::Signature)
        );
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(format!(r#"{{"uid":"root","exp":{}}}"#, now + 60));
        parts[1] = &forged;
        assert_eq!(
            verify(&parts.join("."), &[key.public().clone()], now),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn the_sealed_key_opens_only_with_its_secret() {
        let sealed = seal(b"secret one", b"key bytes").unwrap();
        assert_eq!(open(b"secret one", &sealed).unwrap(), b"key bytes");
        assert!(open(b"secret two", &sealed).is_err());
        assert!(open(b"secret one", &sealed[..5]).is_err());
    }
}
