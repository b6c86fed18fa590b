//! Names that cross layers, validated once: a [`RoomName`] is checked where it enters (the
//! WHIP/WHEP path, the `token` command) and trusted after. A leaf: it must never import
//! another module of this crate.

use std::fmt;

/// A room name: 1-64 characters of ASCII letters, digits, '-', '_' and '.'.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomName(String);

/// A room name that breaks the rule of [`RoomName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("room names are 1-64 characters of letters, digits, '-', '_' and '.'")]
pub struct BadRoomName;

impl RoomName {
    /// Checks `room` against the rule.
    pub fn parse(room: &str) -> Result<RoomName, BadRoomName> {
        let ok = !room.is_empty()
            && room.len() <= 64
            && room
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(RoomName(room.to_string()))
        } else {
            Err(BadRoomName)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        assert!(RoomName::parse("lesson-12").is_ok());
        assert!(RoomName::parse("a.b_c").is_ok());
        assert_eq!(RoomName::parse(&"x".repeat(64)).unwrap().as_str().len(), 64);
        assert_eq!(RoomName::parse(&"x".repeat(65)), Err(BadRoomName));
        assert_eq!(RoomName::parse(""), Err(BadRoomName));
        assert_eq!(RoomName::parse("a/b"), Err(BadRoomName));
        assert_eq!(RoomName::parse("日本"), Err(BadRoomName));
    }
}
