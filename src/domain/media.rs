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

/// The media types served as what they are, inline. Any other declared type (SVG, HTML,
/// anything with parameters or a second type) is a file: stored and served as
/// `application/octet-stream`, to be saved, never rendered.
const IMAGE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/heic",
    "image/heif",
];
const AUDIO_TYPES: &[&str] = &[
    "audio/mpeg",
    "audio/mp4",
    "audio/aac",
    "audio/ogg",
    "audio/opus",
    "audio/flac",
    "audio/wav",
    "audio/x-wav",
    "audio/webm",
];
const VIDEO_TYPES: &[&str] = &[
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
    "video/x-msvideo",
    "video/3gpp",
];

/// What a download of every file that is not media is served as.
pub const FILE_CONTENT_TYPE: &str = "application/octet-stream";

impl MediaType {
    /// The type a declared `Content-Type` (as [`normalize_content_type`] returns it) puts an
    /// upload in: only the exact types above are media.
    pub fn of_content_type(content_type: &str) -> Self {
        if IMAGE_TYPES.contains(&content_type) {
            Self::Image
        } else if AUDIO_TYPES.contains(&content_type) {
            Self::Audio
        } else if VIDEO_TYPES.contains(&content_type) {
            Self::Video
        } else {
            Self::File
        }
    }
}

/// A declared content type as one `type/subtype`, lower case, without parameters, lists or
/// spaces; `None` for anything else.
pub fn normalize_content_type(declared: &str) -> Option<String> {
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    let lower = declared.to_ascii_lowercase();
    let (top, sub) = lower.split_once('/')?;
    (lower.len() <= 127 && token(top) && token(sub)).then_some(lower)
}

/// The `Content-Type` a stored object is served with: its own for media, bytes for files.
pub fn served_type(media_type: MediaType, content_type: &str) -> &str {
    match media_type {
        MediaType::File => FILE_CONTENT_TYPE,
        _ if MediaType::of_content_type(content_type) == media_type => content_type,
        _ => FILE_CONTENT_TYPE,
    }
}

/// The `Content-Disposition` a stored object is served with: media inline, files as
/// attachments, both under a file name with nothing a header could misread.
pub fn served_disposition(media_type: MediaType, content_type: &str, name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let how = if served_type(media_type, content_type) == FILE_CONTENT_TYPE {
        "attachment"
    } else {
        "inline"
    };
    format!("{how}; filename=\"{safe}\"")
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

/// ISO base media (MP4, MOV, HEIF...): a `ftyp` box of a plausible size (the major and
/// minor brand, then whole compatible brands) with one of `brands` as major brand. Text that
/// happens to hold `ftyp` at offset 4 (`<!--ftypavif-->` at the top of an SVG) has no such
/// size.
fn is_iso_media(b: &[u8], brands: &[&[u8; 4]]) -> bool {
    let size = b
        .get(0..4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .unwrap_or(0);
    (16..=1024).contains(&size)
        && size % 4 == 0
        && b.get(4..8) == Some(b"ftyp")
        && b.get(8..12)
            .is_some_and(|major| brands.iter().any(|brand| major == *brand))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_declared_content_type() {
        assert_eq!(MediaType::of_content_type("image/png"), MediaType::Image);
        assert_eq!(MediaType::of_content_type("video/mp4"), MediaType::Video);
        assert_eq!(MediaType::of_content_type("audio/ogg"), MediaType::Audio);
        assert_eq!(MediaType::of_content_type("application/pdf"), MediaType::File);
        assert_eq!(MediaType::of_content_type("image/svg+xml"), MediaType::File);
        assert_eq!(MediaType::of_content_type("nonsense"), MediaType::File);
    }

    #[test]
    fn declared_types_are_one_exact_type() {
        assert_eq!(normalize_content_type("Video/MP4").as_deref(), Some("video/mp4"));
        assert_eq!(
            normalize_content_type("image/svg+xml").as_deref(),
            Some("image/svg+xml")
        );
        for bad in [
            "image/png, text/html",
            "image/png; a=b",
            "image/ png",
            "image/",
            "png",
            "",
        ] {
            assert_eq!(normalize_content_type(bad), None, "{bad}");
        }
        assert_eq!(served_type(MediaType::Image, "image/png"), "image/png");
        assert_eq!(served_type(MediaType::File, "text/html"), FILE_CONTENT_TYPE);
        assert_eq!(served_type(MediaType::Image, "image/png, text/html"), FILE_CONTENT_TYPE);
        assert_eq!(
            served_disposition(MediaType::File, "text/html", "a\"b.html"),
            "attachment; filename=\"a_b.html\""
        );
        assert_eq!(
            served_disposition(MediaType::Image, "image/png", "dot.png"),
            "inline; filename=\"dot.png\""
        );
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
        assert!(matches_declared(
            MediaType::Image,
            b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf"
        ));
        assert!(!matches_declared(
            MediaType::Image,
            b"<!--ftypavif--><svg onload=alert(1)>"
        ));
    }
}
