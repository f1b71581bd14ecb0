//! Initial packet protection (RFC 9001 §5, RFC 9369 §3.3): keys derived from the client's
//! Destination Connection ID with the version's public salt, header protection removal and
//! AES-128-GCM decryption into a caller-provided buffer. Anyone on the path can do this by
//! design; it grants nothing beyond the Initial packets.

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes_gcm::{AeadInOut, Aes128Gcm};
use hkdf::Hkdf;
use sha2::Sha256;

use super::{LongHeader, QuicError, VERSION_1, VERSION_2};

const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];

/// Drafts 29 to 32 of QUIC version 1 (still seen in older captures and clients).
const SALT_DRAFT29: [u8; 20] = [
    0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0,
    0x43, 0x90, 0xa8, 0x99,
];

/// One direction's Initial packet protection keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitialKeys {
    pub key: [u8; 16],
    pub iv: [u8; 12],
    pub hp: [u8; 16],
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(prk: &Hkdf<Sha256>, label: &[u8], out: &mut [u8]) -> Result<(), QuicError> {
    // length (2) + label length (1) + "tls13 " + label (at most 12 here) + context length (1).
    let mut info = [0u8; 2 + 1 + 6 + 16 + 1];
    let full = 6 + label.len();
    let n = 2 + 1 + full + 1;
    let len = u16::try_from(out.len()).map_err(|_| QuicError::BufferTooSmall)?;
    let info = info.get_mut(..n).ok_or(QuicError::BufferTooSmall)?;
    info[..2].copy_from_slice(&len.to_be_bytes());
    info[2] = full as u8;
    info[3..9].copy_from_slice(b"tls13 ");
    info[9..9 + label.len()].copy_from_slice(label);
    info[n - 1] = 0;
    prk.expand(info, out).map_err(|_| QuicError::BufferTooSmall)
}

/// Whether the Initial keys of `version` are known (versions 1 and 2, drafts 29 to 32).
pub fn has_initial_keys(version: u32) -> bool {
    matches!(version, VERSION_1 | VERSION_2 | 0xff00_001d..=0xff00_0020)
}

/// The Initial keys of a version for a connection whose client chose `dcid`: the client's
/// (`server == false`) or the server's.
pub fn initial_keys(version: u32, dcid: &[u8], server: bool) -> Result<InitialKeys, QuicError> {
    let (salt, labels): (&[u8], [&[u8]; 3]) = match version {
        VERSION_1 => (&SALT_V1, [b"quic key", b"quic iv", b"quic hp"]),
        VERSION_2 => (&SALT_V2, [b"quicv2 key", b"quicv2 iv", b"quicv2 hp"]),
        0xff00_001d..=0xff00_0020 => (&SALT_DRAFT29, [b"quic key", b"quic iv", b"quic hp"]),
        v => return Err(QuicError::UnsupportedVersion(v)),
    };
    let initial = Hkdf::<Sha256>::new(Some(salt), dcid);
    let mut secret = [0u8; 32];
    let side: &[u8] = if server { b"server in" } else { b"client in" };
    expand_label(&initial, side, &mut secret)?;
    let prk = Hkdf::<Sha256>::from_prk(&secret).map_err(|_| QuicError::BufferTooSmall)?;
    let mut k = InitialKeys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    expand_label(&prk, labels[0], &mut k.key)?;
    expand_label(&prk, labels[1], &mut k.iv)?;
    expand_label(&prk, labels[2], &mut k.hp)?;
    Ok(k)
}

/// The header protection mask for a 16-byte sample (AES-128-ECB of the sample).
pub fn hp_mask(hp: &[u8; 16], sample: &[u8; 16]) -> [u8; 16] {
    let cipher = Aes128::new(hp.into());
    let mut block = aes::Block::from(*sample);
    cipher.encrypt_block(&mut block);
    block.into()
}

/// Removes header protection and decrypts one Initial packet (`packet` is exactly the packet,
/// `h` its parsed header) into `out`. Returns the packet number and the plaintext payload
/// (a slice of `out`, after the unprotected header).
pub fn decrypt_initial<'o>(
    packet: &[u8],
    h: &LongHeader<'_>,
    keys: &InitialKeys,
    out: &'o mut [u8],
) -> Result<(u64, &'o [u8]), QuicError> {
    let pn_off = h.pn_offset;
    let sample: [u8; 16] = packet
        .get(pn_off + 4..pn_off + 20)
        .and_then(|s| s.try_into().ok())
        .ok_or(QuicError::Truncated)?;
    let mask = hp_mask(&keys.hp, &sample);
    let first = h.first ^ (mask[0] & 0x0f);
    let pn_len = usize::from(first & 3) + 1;
    let header_len = pn_off + pn_len;
    let len = packet.len();
    if len < header_len + 16 {
        return Err(QuicError::Truncated);
    }
    let buf = out.get_mut(..len).ok_or(QuicError::BufferTooSmall)?;
    buf.copy_from_slice(packet);
    buf[0] = first;
    let mut pn = 0u64;
    for i in 0..pn_len {
        let b = buf.get_mut(pn_off + i).ok_or(QuicError::Truncated)?;
        *b ^= mask[1 + i];
        pn = pn << 8 | u64::from(*b);
    }
    let mut nonce = keys.iv;
    for (n, p) in nonce[4..].iter_mut().zip(pn.to_be_bytes()) {
        *n ^= p;
    }
    let (aad, rest) = buf.split_at_mut(header_len);
    let (ct, tag) = rest.split_at_mut(rest.len() - 16);
    let tag: [u8; 16] = (&*tag).try_into().map_err(|_| QuicError::Truncated)?;
    let aead = Aes128Gcm::new((&keys.key).into());
    aead.decrypt_inout_detached(&nonce.into(), aad, ct.into(), &tag.into())
        .map_err(|_| QuicError::Decrypt)?;
    let payload = out.get(header_len..len - 16).ok_or(QuicError::Truncated)?;
    Ok((pn, payload))
}

/// Builds a protected client Initial packet into `out`, as a client would (RFC 9001 §5.3,
/// §5.4): a long header with `dcid`, `scid`, no token and a 4-byte packet number `pn`,
/// `payload` (frames) sealed with `keys`, header protection applied. Returns the packet's
/// length. For generating test traffic: an observer never needs to seal.
pub fn seal_initial(
    version: u32,
    keys: &InitialKeys,
    dcid: &[u8],
    scid: &[u8],
    pn: u32,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, QuicError> {
    if dcid.len() > super::MAX_CID_LEN || scid.len() > super::MAX_CID_LEN {
        return Err(QuicError::BadCid);
    }
    // Type bits: Initial is 0 in version 1, 1 in version 2 (RFC 9369 §3.2).
    let ty: u8 = if version == VERSION_2 { 1 } else { 0 };
    // The Length field (packet number, payload, tag) in its 2-byte varint form.
    let length = 4 + payload.len() + 16;
    if length >= 1 << 14 {
        return Err(QuicError::BufferTooSmall);
    }
    let pn_off = 1 + 4 + 1 + dcid.len() + 1 + scid.len() + 1 + 2;
    let total = pn_off + length;
    let buf = out.get_mut(..total).ok_or(QuicError::BufferTooSmall)?;
    buf[0] = 0xc0 | ty << 4 | 3;
    buf[1..5].copy_from_slice(&version.to_be_bytes());
    buf[5] = dcid.len() as u8;
    let mut at = 6;
    buf[at..at + dcid.len()].copy_from_slice(dcid);
    at += dcid.len();
    buf[at] = scid.len() as u8;
    at += 1;
    buf[at..at + scid.len()].copy_from_slice(scid);
    at += scid.len();
    buf[at] = 0; // token length
    at += 1;
    buf[at..at + 2].copy_from_slice(&(0x4000 | length as u16).to_be_bytes());
    at += 2;
    buf[at..at + 4].copy_from_slice(&pn.to_be_bytes());
    at += 4;
    buf[at..at + payload.len()].copy_from_slice(payload);
    let mut nonce = keys.iv;
    for (n, p) in nonce[4..].iter_mut().zip(u64::from(pn).to_be_bytes()) {
        *n ^= p;
    }
    let (aad, rest) = buf.split_at_mut(at);
    let (pt, tag_out) = rest.split_at_mut(payload.len());
    let tag = Aes128Gcm::new((&keys.key).into())
        .encrypt_inout_detached(&nonce.into(), aad, pt.into())
        .map_err(|_| QuicError::BufferTooSmall)?;
    tag_out.copy_from_slice(&tag);
    let sample: [u8; 16] = buf
        .get(pn_off + 4..pn_off + 20)
        .and_then(|s| s.try_into().ok())
        .ok_or(QuicError::Truncated)?;
    let mask = hp_mask(&keys.hp, &sample);
    buf[0] ^= mask[0] & 0x0f;
    for i in 0..4 {
        buf[pn_off + i] ^= mask[1 + i];
    }
    Ok(total)
}
