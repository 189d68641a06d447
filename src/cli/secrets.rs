//! New SIDs and secrets, from the operating system's CSPRNG.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use zeroize::Zeroizing;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `SG` + 32 base62 characters (about 190 bits), as SPEC §1 describes.
pub fn new_sid() -> std::io::Result<String> {
    let mut sid = String::with_capacity(34);
    sid.push_str("SG");
    let mut filled = 0;
    while filled < 32 {
        let mut buf = [0u8; 64];
        getrandom::fill(&mut buf).map_err(|e| std::io::Error::other(e.to_string()))?;
        for b in buf {
            // Rejection sampling keeps every character equally likely.
            if b < 248 && filled < 32 {
                sid.push(char::from(BASE62[usize::from(b % 62)]));
                filled += 1;
            }
        }
    }
    Ok(sid)
}

/// 32 random bytes, base64url without padding: 43 characters, safe in a Basic password.
pub fn new_secret() -> std::io::Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut()).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_and_secrets_have_the_documented_shape() {
        let sid = new_sid().unwrap();
        assert_eq!(sid.len(), 34);
        assert!(sid.starts_with("SG"));
        assert!(sid[2..].bytes().all(|b| b.is_ascii_alphanumeric()));
        let secret = new_secret().unwrap();
        assert_eq!(secret.len(), 43);
        assert_ne!(*secret, *new_secret().unwrap());
    }
}
