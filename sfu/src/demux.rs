//! Telling which participant a datagram on the shared UDP port belongs to.
//!
//! Every participant's connection gets its own ICE username fragment. A connectivity check
//! (STUN binding request) names it in its USERNAME attribute (`<our ufrag>:<their ufrag>`), so
//! the first packet from a new address can be routed; the connection itself then verifies the
//! check's MESSAGE-INTEGRITY, and later packets follow the address.

const STUN_HEADER: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// True when the datagram is a STUN message (RFC 7983 demultiplexing: first byte 0..=3 and the
/// magic cookie in place).
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= STUN_HEADER && datagram[0] < 4 && datagram[4..8] == MAGIC_COOKIE
}

/// The local (our) username fragment a STUN request is addressed to, if it carries one.
pub fn stun_local_ufrag(datagram: &[u8]) -> Option<&str> {
    if !is_stun(datagram) {
        return None;
    }
    let declared = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
    let body = datagram.get(STUN_HEADER..STUN_HEADER + declared)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        let value = rest.get(4..4 + len)?;
        if kind == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next().filter(|ufrag| !ufrag.is_empty());
        }
        let padded = (4 + len).div_ceil(4) * 4;
        rest = rest.get(padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        // A SOFTWARE attribute first, with padding, to walk past.
        attrs.extend_from_slice(&[0x80, 0x22, 0x00, 0x03, b'a', b'b', b'c', 0]);
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        msg.extend_from_slice(&MAGIC_COOKIE);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attrs);
        msg
    }

    #[test]
    fn finds_the_local_ufrag_of_a_binding_request() {
        assert_eq!(stun_local_ufrag(&binding_request(b"srv1:cli9")), Some("srv1"));
    }

    #[test]
    fn refuses_what_is_not_a_well_formed_stun_request() {
        assert_eq!(stun_local_ufrag(&[]), None);
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None, "RTP is not STUN");
        let mut truncated = binding_request(b"srv1:cli9");
        truncated.truncate(30);
        assert_eq!(stun_local_ufrag(&truncated), None);
        let mut lying = binding_request(b"srv1:cli9");
        lying[3] = 0xff;
        assert_eq!(stun_local_ufrag(&lying), None, "declared length beyond the datagram");
        assert_eq!(stun_local_ufrag(&binding_request(b":cli9")), None);
        assert_eq!(stun_local_ufrag(&binding_request(&[0xff, 0xfe])), None);
    }
}
