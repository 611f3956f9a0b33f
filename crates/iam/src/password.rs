//! Passwords: Argon2id (memory-hard) PHC strings, and the checks a login makes against them.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 5;
/// The longest password accepted (hashing cost grows with it).
pub const MAX_PASSWORD: usize = 1024;

/// Why a password is not accepted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PasswordError(pub String);

/// Whether `password` may be set.
pub fn check(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(PasswordError(format!(
            "password must be at least {MIN_PASSWORD} characters long"
        )));
    }
    if password.len() > MAX_PASSWORD {
        return Err(PasswordError(format!(
            "password must be at most {MAX_PASSWORD} bytes long"
        )));
    }
    Ok(())
}

/// The Argon2id PHC string of `password`, with a fresh salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check(password)?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError(format!("cannot hash the password: {e}")))
}

/// Whether `phc` is an Argon2 PHC string (what a config may give for the bootstrap user).
pub fn is_hash(phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

/// Whether `password` matches `phc`. A malformed `phc` matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD {
        return false;
    }
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Spends what [`verify`] spends, for a login of an unknown user, so its answer takes as
/// long as a wrong password's and tells nothing.
pub fn verify_nobody(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("not anybody's password").unwrap_or_default());
    let _ = verify(password, phc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_their_password_only() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(is_hash(&h));
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsf", &h));
        assert!(!verify("correct horse", "not a hash"));
        assert_ne!(h, hash("correct horse").unwrap(), "salted");
        assert!(hash("abc").is_err());
    }
}
