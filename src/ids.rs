//! Names that cross layers, validated once: a [`RoomName`] is checked where it enters (the
//! WHIP/WHEP path, the `token` command) and trusted after. A leaf: it must never import
//! another module of this crate.

use std::fmt;

/// What a lesson's room name starts with.
const LESSON_ROOM: &str = "lesson-";

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

    /// The media room of timetable lesson `id`: `lesson-{id}`. The one place that spells it.
    pub fn lesson(id: i64) -> RoomName {
        RoomName(format!("{LESSON_ROOM}{id}"))
    }

    /// The lesson whose room this is, when it is one: the inverse of [`RoomName::lesson`]
    /// (`lesson-007` is not lesson 7's room, so it is `None`).
    pub fn lesson_id(&self) -> Option<i64> {
        let id: i64 = self.0.strip_prefix(LESSON_ROOM)?.parse().ok()?;
        (RoomName::lesson(id) == *self).then_some(id)
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

    #[test]
    fn lesson_rooms_round_trip() {
        let r = RoomName::lesson(12);
        assert_eq!(r.as_str(), "lesson-12");
        assert_eq!(
            RoomName::parse(r.as_str()),
            Ok(r.clone()),
            "a valid room name"
        );
        assert_eq!(r.lesson_id(), Some(12));
        assert_eq!(RoomName::lesson(i64::MAX).lesson_id(), Some(i64::MAX));
        let not = |s: &str| RoomName::parse(s).unwrap().lesson_id();
        assert_eq!(not("lesson-"), None);
        assert_eq!(not("lesson-007"), None, "not the canonical spelling");
        assert_eq!(not("lesson-12x"), None);
        assert_eq!(not("lessons-12"), None);
        assert_eq!(not("room-12"), None);
    }
}
