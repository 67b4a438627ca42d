//! HMAC-SHA256 (RFC 2104) for the compiled-component cache (`cache.rs`): the workspace's `sha2`
//! predates the `hmac` crate in the lock file (different `digest` versions), and the
//! construction is a few lines over it.

use sha2::{Digest, Sha256};

/// Bytes of a key and of a tag.
pub const LEN: usize = 32;
pub type Key = [u8; LEN];

const BLOCK: usize = 64;

/// The tag of the concatenation of `parts` under `key`.
pub fn sign(key: &[u8], parts: &[&[u8]]) -> [u8; LEN] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..LEN].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Whether `tag` is the tag of `parts`, compared in constant time (no early exit to time).
pub fn verify(key: &[u8], parts: &[&[u8]], tag: &[u8; LEN]) -> bool {
    let expected = sign(key, parts);
    expected.iter().zip(tag).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test cases 2 (short key) and 6 (key longer than a block).
    #[test]
    fn matches_the_rfc_4231_vectors() {
        let tag = sign(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(tag), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        let long = sign(&[0xaa; 131], &[b"Test Using Larger Than Block-Size Key - Hash Key First"]);
        assert_eq!(hex::encode(long), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
        assert!(verify(b"Jefe", &[b"what do ya want for nothing?"], &tag));
        assert!(!verify(b"Jeff", &[b"what do ya want for nothing?"], &tag));
    }
}
