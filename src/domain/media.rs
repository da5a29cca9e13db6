//! Media types and what their bytes must look like: an upload declared as an image, audio or
//! video must start with that kind's signature, so a renamed executable never passes for a
//! picture. Files are anything else.

use serde::{Deserialize, Serialize};

/// The seed's Media `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    Image,
    Audio,
    Video,
    File,
}

impl MediaType {
    /// The type a declared `Content-Type` puts an upload in.
    pub fn of_content_type(content_type: &str) -> Self {
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.split_once('/').map(|(top, _)| top) {
            Some("image") => Self::Image,
            Some("audio") => Self::Audio,
            Some("video") => Self::Video,
            _ => Self::File,
        }
    }
}

/// Bytes [`matches_declared`] needs from the start of an object.
pub const SNIFF_BYTES: usize = 64;

/// Whether an object's first bytes fit its declared type. Files always fit.
pub fn matches_declared(kind: MediaType, head: &[u8]) -> bool {
    match kind {
        MediaType::Image => is_image(head),
        MediaType::Audio => is_audio(head),
        MediaType::Video => is_video(head),
        MediaType::File => true,
    }
}

fn is_image(b: &[u8]) -> bool {
    b.starts_with(b"\x89PNG\r\n\x1a\n")
        || b.starts_with(&[0xff, 0xd8, 0xff])
        || b.starts_with(b"GIF87a")
        || b.starts_with(b"GIF89a")
        || (b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP"))
        || is_iso_media(b, &[b"avif", b"avis", b"heic", b"heix", b"mif1"])
}

fn is_audio(b: &[u8]) -> bool {
    b.starts_with(b"ID3")
        || (b.len() >= 2 && b[0] == 0xff && b[1] & 0xe0 == 0xe0)
        || b.starts_with(b"OggS")
        || b.starts_with(b"fLaC")
        || (b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WAVE"))
        || is_iso_media(b, &[b"M4A ", b"M4B ", b"mp42", b"isom"])
        || b.starts_with(&[0x1a, 0x45, 0xdf, 0xa3])
}

fn is_video(b: &[u8]) -> bool {
    is_iso_media(
        b,
        &[
            b"isom", b"iso2", b"mp41", b"mp42", b"avc1", b"qt  ", b"M4V ", b"3gp4", b"3gp5", b"dash",
        ],
    ) || b.starts_with(&[0x1a, 0x45, 0xdf, 0xa3])
        || b.starts_with(b"OggS")
        || (b.starts_with(b"RIFF") && b.get(8..12) == Some(b"AVI "))
}

/// ISO base media (MP4, MOV, HEIF...): a `ftyp` box with one of `brands` as major brand.
fn is_iso_media(b: &[u8], brands: &[&[u8; 4]]) -> bool {
    b.get(4..8) == Some(b"ftyp")
        && b.get(8..12)
            .is_some_and(|major| brands.iter().any(|brand| major == *brand))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_declared_content_type() {
        assert_eq!(MediaType::of_content_type("image/png"), MediaType::Image);
        assert_eq!(MediaType::of_content_type("Video/MP4; codecs=avc1"), MediaType::Video);
        assert_eq!(MediaType::of_content_type("audio/ogg"), MediaType::Audio);
        assert_eq!(MediaType::of_content_type("application/pdf"), MediaType::File);
        assert_eq!(MediaType::of_content_type("nonsense"), MediaType::File);
    }

    #[test]
    fn signatures_are_checked_for_media_and_not_for_files() {
        assert!(matches_declared(MediaType::Image, b"\x89PNG\r\n\x1a\n rest"));
        assert!(matches_declared(MediaType::Image, &[0xff, 0xd8, 0xff, 0xe0]));
        assert!(matches_declared(MediaType::Image, b"RIFF\0\0\0\0WEBPVP8 "));
        assert!(!matches_declared(MediaType::Image, b"MZ\x90\0 an executable"));
        assert!(!matches_declared(MediaType::Image, b"<svg onload=alert(1)>"));
        assert!(matches_declared(MediaType::Video, b"\0\0\0\x18ftypmp42\0\0\0\0"));
        assert!(!matches_declared(MediaType::Video, b"\0\0\0\x18ftypheic"));
        assert!(matches_declared(MediaType::Audio, b"ID3\x04\0"));
        assert!(matches_declared(MediaType::Audio, b"OggS\0\x02"));
        assert!(!matches_declared(MediaType::Audio, b"%PDF-1.7"));
        assert!(matches_declared(MediaType::File, b"%PDF-1.7"));
        assert!(!matches_declared(MediaType::Image, b""));
    }
}
