//! Logging in to the VNC server with what a browser typed, and holding the
//! viewers that join later to the same answer (docs/protocol.md "Handshake").
//!
//! The VNC server may want a password (VNC Authentication; X509Plain or
//! Apple Remote Desktop with the user name configured) or a user name and
//! a password (X509Plain, Apple Remote Desktop without one). What the
//! configuration lacks, the session asks its browsers for ([`Ask`]): the
//! first [`Answer`] goes to the VNC server. A session unlocked that way keeps
//! the answer, asks every viewer that joins later the same question and lets
//! it in only on the same answer — the VNC login is the session's access
//! control, so sharing the RFB connection must not bypass it.

use super::proto::{self, Input};

/// What a session asks its browsers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// `PasswordRequired`, answered by `Password`.
    Password,
    /// `CredentialsRequired`, answered by `Credentials`.
    Credentials,
}

impl Ask {
    /// The question, as a browser-protocol message.
    pub fn write(self, out: &mut Vec<u8>) {
        match self {
            Ask::Password => proto::password_required(out),
            Ask::Credentials => proto::credentials_required(out),
        }
    }

    /// Why an answer of the other kind is refused.
    pub fn mismatch(self) -> &'static str {
        match self {
            Ask::Password => "a password was asked for, not a user name",
            Ask::Credentials => "a user name and a password were asked for",
        }
    }
}

/// A browser's answer. Zeroed when dropped; `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Answer {
    /// Only for [`Ask::Credentials`].
    pub username: Option<Vec<u8>>,
    pub password: Vec<u8>,
}

impl Answer {
    /// The answer `input` gives to `ask`: `None` if `input` is no answer,
    /// `Some(Err(..))` if it answers another question.
    pub fn of(ask: Ask, input: &Input<'_>) -> Option<Result<Answer, &'static str>> {
        let answer = match (ask, input) {
            (Ask::Password, Input::Password(pw)) => Answer { username: None, password: pw.to_vec() },
            (Ask::Credentials, Input::Credentials { username, password }) => {
                Answer { username: Some(username.to_vec()), password: password.to_vec() }
            }
            (_, Input::Password(_) | Input::Credentials { .. }) => return Some(Err(ask.mismatch())),
            _ => return None,
        };
        Some(Ok(answer))
    }

    /// The same answer, compared in time independent of where they differ.
    pub fn matches(&self, other: &Answer) -> bool {
        let user = match (&self.username, &other.username) {
            (Some(a), Some(b)) => constant_time_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        // Both compared, whatever the first says.
        user & constant_time_eq(&self.password, &other.password)
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.password.fill(0);
        if let Some(u) = &mut self.username {
            u.fill(0);
        }
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Answer {{ username: {}, password: .. }}", if self.username.is_some() { "Some(..)" } else { "None" })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_match_their_question_only() {
        let pw = Input::Password(b"secret");
        let cred = Input::Credentials { username: b"me", password: b"secret" };
        let a = Answer::of(Ask::Password, &pw).unwrap().unwrap();
        assert_eq!(a.username, None);
        assert_eq!(Answer::of(Ask::Password, &cred).unwrap(), Err(Ask::Password.mismatch()));
        assert_eq!(Answer::of(Ask::Credentials, &pw).unwrap(), Err(Ask::Credentials.mismatch()));
        assert_eq!(Answer::of(Ask::Password, &Input::FrameAck(1)), None);
        let c = Answer::of(Ask::Credentials, &cred).unwrap().unwrap();
        assert!(c.matches(&c.clone()));
        assert!(!c.matches(&a), "same password, no user name");
        let other_user = Answer { username: Some(b"you".to_vec()), password: b"secret".to_vec() };
        assert!(!c.matches(&other_user));
        let other_pw = Answer { username: Some(b"me".to_vec()), password: b"secreT".to_vec() };
        assert!(!c.matches(&other_pw));
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret") && !shown.contains("109"), "{shown}");
    }

    #[test]
    fn questions_have_their_messages() {
        let mut out = Vec::new();
        Ask::Password.write(&mut out);
        Ask::Credentials.write(&mut out);
        assert_eq!(out, [proto::to_browser::PASSWORD_REQUIRED, proto::to_browser::CREDENTIALS_REQUIRED]);
    }
}
