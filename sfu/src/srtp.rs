//! SRTP for the copies the SFU protects itself: a direct down track's packets, sealed in the
//! buffer they are sent from with the connection's local master key (AEAD AES-GCM, RFC 7714),
//! numbered by the down track's own packet index. The connection never sends on those SSRCs,
//! so its own SRTP context and this one never share an index.

use aes::cipher::{BlockEncrypt, KeyInit};
use bytes::BytesMut;
use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use rtc::peer_connection::SrtpMaster;
use rtc::srtp::protection_profile::ProtectionProfile;

/// The key derivation labels for SRTP's encryption key and salt (RFC 3711 section 4.3.1).
const LABEL_ENCRYPTION: u8 = 0x00;
const LABEL_SALT: u8 = 0x02;

/// An AEAD session salt and nonce: 96 bits (RFC 7714 section 8.1).
const SALT_LEN: usize = 12;

/// AES-GCM's tag, appended to each packet (RFC 7714 section 6).
pub(crate) const TAG_LEN: usize = 16;

/// Protects RTP packets with one connection's local SRTP session keys.
pub(crate) struct SrtpSealer {
    key: LessSafeKey,
    salt: [u8; SALT_LEN],
}

impl std::fmt::Debug for SrtpSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpSealer").finish_non_exhaustive()
    }
}

impl SrtpSealer {
    /// The session keys derived from `master` (RFC 3711 section 4.3, with a key derivation
    /// rate of 0). `None` for a profile other than AEAD AES-128-GCM or AES-256-GCM, or a key
    /// or salt of the wrong length: the connection's own context protects those.
    pub fn new(master: &SrtpMaster) -> Option<Self> {
        let (algorithm, key_len) = match master.profile {
            ProtectionProfile::AeadAes128Gcm => (&AES_128_GCM, 16),
            ProtectionProfile::AeadAes256Gcm => (&AES_256_GCM, 32),
            _ => return None,
        };
        if master.key.len() != key_len || master.salt.len() != SALT_LEN {
            return None;
        }
        let mut session_key = vec![0u8; key_len];
        derive(&master.key, &master.salt, LABEL_ENCRYPTION, &mut session_key);
        let mut salt = [0u8; SALT_LEN];
        derive(&master.key, &master.salt, LABEL_SALT, &mut salt);
        let key = LessSafeKey::new(UnboundKey::new(algorithm, &session_key).ok()?);
        Some(Self { key, salt })
    }

    /// Protects `packet` in place: an RTP packet whose header (the additional data) is its
    /// first `header_len` bytes, with `ssrc` and packet index `index` (rollover count and
    /// sequence number). Its payload is encrypted and the tag appended.
    pub fn seal(&self, ssrc: u32, index: u64, header_len: usize, packet: &mut BytesMut) -> Result<(), SealError> {
        if header_len > packet.len() {
            return Err(SealError);
        }
        let mut iv = [0u8; SALT_LEN];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        // The 48-bit index: rollover count, then sequence number.
        iv[6..12].copy_from_slice(&index.to_be_bytes()[2..]);
        for (byte, salt) in iv.iter_mut().zip(self.salt) {
            *byte ^= salt;
        }
        let (header, payload) = packet.split_at_mut(header_len);
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(&*header), payload)
            .map_err(|_| SealError)?;
        packet.extend_from_slice(tag.as_ref());
        Ok(())
    }
}

/// The cipher refused a packet (one too long for it, or a header past its end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SealError;

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SRTP sealing refused the packet")
    }
}

/// The AES-CM key derivation function (RFC 3711 section 4.3.3), for a key derivation rate of
/// 0: fills `out` with the keystream of AES in counter mode under `master_key`, from the
/// master salt (zero-padded to 14 bytes) with `label` in its eighth byte, shifted left 16 bits.
fn derive(master_key: &[u8], master_salt: &[u8], label: u8, out: &mut [u8]) {
    for (i, chunk) in out.chunks_mut(16).enumerate() {
        let mut block = aes::Block::default();
        block[..master_salt.len()].copy_from_slice(master_salt);
        block[7] ^= label;
        block[14..].copy_from_slice(&(i as u16).to_be_bytes());
        match master_key.len() {
            32 => aes::Aes256::new_from_slice(master_key)
                .expect("a 32-byte key")
                .encrypt_block(&mut block),
            _ => aes::Aes128::new_from_slice(master_key)
                .expect("a 16-byte key")
                .encrypt_block(&mut block),
        }
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// The packet index a sender keeps for one SSRC (RFC 3711 section 3.3.1): the rollover count
/// goes up each time the sequence number wraps, and a packet sent late (a reordered one) takes
/// the count it was numbered under (the estimate of RFC 3711 appendix A).
#[derive(Debug, Default)]
pub(crate) struct SendIndex {
    highest: Option<u64>,
}

impl SendIndex {
    /// The index of the packet numbered `seq`.
    pub fn next(&mut self, seq: u16) -> u64 {
        let Some(highest) = self.highest else {
            self.highest = Some(u64::from(seq));
            return u64::from(seq);
        };
        let (roc, last) = (highest >> 16, (highest & 0xffff) as u16);
        let roc = if last < 0x8000 {
            // Late from before the last wrap (none came before the first packet).
            if seq > last && seq - last > 0x8000 {
                roc.saturating_sub(1)
            } else {
                roc
            }
        } else if seq < last - 0x8000 {
            roc + 1
        } else {
            roc
        };
        // The count is 32 bits: past it, it starts over (a key is not used that long).
        let index = ((roc & 0xffff_ffff) << 16) | u64::from(seq);
        if index > highest || roc > highest >> 16 {
            self.highest = Some(index);
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp::Packet;
    use rtc::rtp::header::Header;
    use rtc::shared::marshal::{Marshal, MarshalSize};
    use rtc::srtp::context::Context;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_key_derivation_gives_rfc_3711s_test_vector() {
        // RFC 3711 appendix B.3.
        let master_key = unhex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let master_salt = unhex("0EC675AD498AFEEBB6960B3AABE6");
        let mut key = [0u8; 16];
        derive(&master_key, &master_salt, LABEL_ENCRYPTION, &mut key);
        assert_eq!(key.to_vec(), unhex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut salt = [0u8; 14];
        derive(&master_key, &master_salt, LABEL_SALT, &mut salt);
        assert_eq!(salt.to_vec(), unhex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut auth = [0u8; 20];
        derive(&master_key, &master_salt, 0x01, &mut auth);
        assert_eq!(auth.to_vec(), unhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
    }

    fn master(profile: ProtectionProfile, key_len: usize) -> SrtpMaster {
        SrtpMaster {
            profile,
            key: (0..key_len as u8).map(|b| b.wrapping_mul(7).wrapping_add(3)).collect(),
            salt: (0..12u8).map(|b| b.wrapping_mul(13).wrapping_add(1)).collect(),
        }
    }

    /// The packets a down track sends, across a sequence number wrap, as the SFU seals them
    /// and as `rtc`'s own SRTP context protects them: byte for byte the same.
    fn seals_as_rtc_does(profile: ProtectionProfile, key_len: usize) {
        let master = master(profile, key_len);
        let sealer = SrtpSealer::new(&master).expect("an AEAD profile");
        let crypto = rtc::crypto::default_provider().unwrap();
        let mut reference = Context::new(&master.key, &master.salt, profile, None, None, crypto.crypto()).unwrap();
        let mut index = SendIndex::default();
        // Up to the wrap, one sent late from before it, and on past it.
        let numbers = [65_533u16, 65_534, 65_535, 0, 65_532, 1, 2];
        for (i, seq) in numbers.into_iter().enumerate() {
            let mut header = Header {
                version: 2,
                payload_type: 111,
                sequence_number: seq,
                timestamp: 960 * i as u32,
                ssrc: 0x1234_5678,
                ..Default::default()
            };
            header.set_extension(4, bytes::Bytes::from_static(b"a1")).unwrap();
            let packet = Packet {
                header: header.clone(),
                payload: bytes::Bytes::from(vec![i as u8; 40 + i]),
            };
            let plain = packet.marshal().unwrap();
            let expected = reference.encrypt_rtp_with_header(&plain, &header).unwrap();
            let mut sealed = BytesMut::from(&plain[..]);
            sealer
                .seal(header.ssrc, index.next(seq), header.marshal_size(), &mut sealed)
                .unwrap();
            assert_eq!(sealed, expected, "packet {seq}");
        }
    }

    #[test]
    fn aes_128_gcm_copies_are_sealed_as_rtcs_context_would_across_a_wrap() {
        seals_as_rtc_does(ProtectionProfile::AeadAes128Gcm, 16);
    }

    #[test]
    fn aes_256_gcm_copies_are_sealed_as_rtcs_context_would_across_a_wrap() {
        seals_as_rtc_does(ProtectionProfile::AeadAes256Gcm, 32);
    }

    #[test]
    fn aes_cm_is_left_to_the_connection() {
        assert!(SrtpSealer::new(&master(ProtectionProfile::Aes128CmHmacSha1_80, 16)).is_none());
        let mut short = master(ProtectionProfile::AeadAes128Gcm, 16);
        short.salt.pop();
        assert!(SrtpSealer::new(&short).is_none(), "a salt of the wrong length");
    }

    #[test]
    fn the_index_follows_wraps_and_a_late_packet_keeps_its_count() {
        let mut index = SendIndex::default();
        assert_eq!(index.next(65_535), 65_535);
        assert_eq!(index.next(0), 1 << 16);
        assert_eq!(index.next(65_534), 65_534, "sent late, from before the wrap");
        assert_eq!(index.next(1), (1 << 16) | 1);
        for seq in [20_000, 40_000, 60_000] {
            assert_eq!(index.next(seq), (1 << 16) | u64::from(seq));
        }
        assert_eq!(index.next(2), (2 << 16) | 2, "the next wrap");
        let mut first = SendIndex::default();
        assert_eq!(first.next(10), 10);
        assert_eq!(first.next(40_000), 40_000, "nothing came before the first packet");
    }
}
