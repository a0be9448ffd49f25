//! PKCE (RFC 7636) with the S256 method: a random verifier kept by the client and its SHA-256
//! challenge sent with the authorization request, so that an intercepted device or
//! authorization code is useless without the verifier.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A verifier and its challenge.
#[derive(Clone, PartialEq, Eq)]
pub struct Pkce {
    verifier: String,
    challenge: String,
}

impl Pkce {
    /// The only method this module produces (`plain` would send the verifier itself).
    pub const METHOD: &'static str = "S256";

    /// 32 bytes from the operating system's CSPRNG, base64url without padding: 43 characters,
    /// the 256 bits of entropy RFC 7636 §7.1 recommends.
    pub fn new() -> Result<Self> {
        Ok(Self::from_verifier(URL_SAFE_NO_PAD.encode(secure_random::<32>()?)))
    }

    /// A pair for a known verifier (tests, or a verifier kept across a restart).
    pub fn from_verifier(verifier: impl Into<String>) -> Self {
        let verifier = verifier.into();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Pkce { verifier, challenge }
    }

    /// Secret: sent only with the token request.
    pub fn verifier(&self) -> &str {
        &self.verifier
    }

    /// `BASE64URL(SHA256(verifier))`, sent with the authorization request.
    pub fn challenge(&self) -> &str {
        &self.challenge
    }
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce").field("verifier", &"[redacted]").field("challenge", &self.challenge).finish()
    }
}

/// Bytes from the OS CSPRNG. `fastrand` is not one, and a guessable verifier or `state` defeats
/// their purpose.
pub(crate) fn secure_random<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| Error::Internal { message: format!("the operating system's random source failed: {e}") })?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B: the 32 octets, their verifier, its S256 challenge. (The vector
    /// `dBjftJeZ4CVP-mJ92K9QJsAqP1Wa6e8rFKXkUbm48Tc` → `E9Melhoa…uEGSwtrrwk` sometimes quoted
    /// is a mistyped copy: neither string is in the RFC and the one does not hash to the other.)
    #[test]
    fn rfc7636_appendix_b() {
        let octets: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88,
            83, 132, 141, 121,
        ];
        assert_eq!(URL_SAFE_NO_PAD.encode(octets), "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        let p = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(p.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_eq!(p.verifier(), "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    }

    #[test]
    fn random_verifiers_have_the_right_length_and_alphabet() {
        let url_safe = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let mut seen = std::collections::HashSet::new();
        for _ in 0..64 {
            let p = Pkce::new().unwrap();
            assert_eq!(p.verifier().len(), 43);
            assert_eq!(p.challenge().len(), 43);
            assert!(url_safe(p.verifier()) && url_safe(p.challenge()), "{p:?}");
            assert_eq!(Pkce::from_verifier(p.verifier()).challenge(), p.challenge());
            assert!(seen.insert(p.verifier().to_string()));
        }
    }

    #[test]
    fn debug_hides_the_verifier() {
        let p = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert!(!format!("{p:?}").contains("dBjftJeZ"));
    }
}
