//! Identifier newtypes. A value of these types has been checked once, when the
//! config was loaded; code past the loader never re-checks it.

use std::fmt;

use serde::{Deserialize, Serialize};

fn check_slug(kind: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("{kind} must not be empty"));
    }
    if s.len() > 64 {
        return Err(format!("{kind} `{s}` is longer than 64 characters"));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!(
            "{kind} `{s}` may only contain lowercase letters a-z, digits, `-` and `_`"
        ));
    }
    Ok(())
}

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses an identifier: 1 to 64 characters of `a-z`, `0-9`, `-`, `_`.
            pub fn parse(s: &str) -> Result<Self, String> {
                check_slug($kind, s)?;
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

slug_id!(
    /// The id of a village group in the config (`veulen`, `mechelen-bovelingen`).
    GroupId,
    "group id"
);
slug_id!(
    /// The id of a platform account in the config (`[accounts.ID]`).
    AccountId,
    "account id"
);

/// A platform's chat id, kept exactly as the platform spells it: Telegram's
/// negative integers (`-1001234567890`), WhatsApp's `...@g.us`, a sandbox name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChatId(String);

impl ChatId {
    /// Parses a chat id: 1 to 128 printable characters without white space.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("chat id must not be empty".into());
        }
        if s.len() > 128 {
            return Err(format!("chat id `{s}` is longer than 128 characters"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("chat id `{s}` must not contain white space"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_village_name_in_lowercase_with_a_dash_is_a_group_id() {
        assert_eq!(
            GroupId::parse("mechelen-bovelingen").unwrap().as_str(),
            "mechelen-bovelingen"
        );
    }

    #[test]
    fn a_group_id_with_capitals_or_spaces_is_refused_with_the_reason() {
        let err = GroupId::parse("Klein Gelmen").unwrap_err();
        assert!(err.contains("lowercase"), "{err}");
        assert!(GroupId::parse("").is_err());
        assert!(GroupId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn a_telegram_supergroup_id_is_kept_exactly() {
        let id = ChatId::parse("-1001234567890").unwrap();
        assert_eq!(id.as_str(), "-1001234567890");
    }

    #[test]
    fn a_chat_id_with_white_space_is_refused() {
        assert!(ChatId::parse("1203 63@g.us").is_err());
        assert!(ChatId::parse("").is_err());
    }
}
