//! New SIDs and secrets, from the operating system's CSPRNG.

use zeroize::Zeroizing;

use crate::domain::secret_format;

/// `SG` + 32 base62 characters (about 190 bits), as SPEC §1 describes.
pub fn new_sid() -> std::io::Result<String> {
    let mut sid = String::with_capacity(34);
    sid.push_str("SG");
    secret_format::push_random_base62(&mut sid, 32)?;
    Ok(sid)
}

/// An identifiable secret (SPEC §12): `sgs_` + 40 random base62 characters + a 6-character
/// CRC32 checksum, 50 characters, safe in a Basic password. See [`secret_format`].
pub fn new_secret() -> std::io::Result<Zeroizing<String>> {
    secret_format::generate()
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
        assert_eq!(secret.len(), secret_format::SECRET_LEN);
        assert!(secret_format::is_valid(secret.as_bytes()));
        assert_ne!(*secret, *new_secret().unwrap());
    }
}
