//! Web console sessions (issue 16), replicated so a session opened through one node works
//! on every node, and a sign-out anywhere ends it everywhere.
//!
//! The cookie holds a random secret; the state holds only its SHA-256, so nothing in the log,
//! a snapshot or a backup lets anyone sign in. A session acts as the admin token it was
//! opened with (by name) and ends with it: a removed token's sessions no longer sign anyone
//! in ([`Inventory::ui_session`]). Expired sessions are dropped as new ones open, and at
//! most [`MAX_UI_SESSIONS`] are kept (the oldest goes first).

use serde::{Deserialize, Serialize};

use super::model::*;
use super::request::*;

/// How long a console session lasts without signing in again.
pub const UI_SESSION_SECS: i64 = 8 * 3600;
/// Live sessions kept at most.
pub const MAX_UI_SESSIONS: usize = 1000;

/// One signed-in console session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UiSession {
    /// SHA-256 of the cookie's secret.
    pub id_sha256: [u8; 32],
    /// The admin token (by name) it was opened with: the actor of everything it does.
    pub actor: String,
    /// Where the browser signed in from (its address as the node saw it), for the audit.
    pub from: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Inventory {
    /// The live session whose secret hashes to `sha256` at `now`, if its token still exists.
    pub fn ui_session(&self, sha256: &[u8; 32], now: i64) -> Option<&UiSession> {
        self.ui_sessions
            .iter()
            .find(|s| &s.id_sha256 == sha256)
            .filter(|s| s.expires_at > now)
            .filter(|s| self.admin_tokens.iter().any(|t| t.name == s.actor))
    }
}

pub(super) fn apply_ui(inv: &mut Inventory, req: &Request) -> Response {
    match &req.command {
        Command::OpenUiSession { session } => {
            if !inv.admin_tokens.iter().any(|t| t.name == session.actor) {
                return Err(Refusal::SessionRefused {
                    actor: session.actor.clone(),
                });
            }
            if session.expires_at <= req.at {
                return Err(Refusal::SessionRefused {
                    actor: session.actor.clone(),
                });
            }
            inv.ui_sessions.retain(|s| s.expires_at > req.at);
            inv.ui_sessions.retain(|s| s.id_sha256 != session.id_sha256);
            while inv.ui_sessions.len() >= MAX_UI_SESSIONS {
                inv.ui_sessions.remove(0);
            }
            inv.ui_sessions.push(session.clone());
            Ok(Outcome::Recorded)
        }
        Command::CloseUiSession { id_sha256 } => {
            inv.ui_sessions
                .retain(|s| &s.id_sha256 != id_sha256 && s.expires_at > req.at);
            Ok(Outcome::Recorded)
        }
        other => unreachable!(
            "apply_ui is called for the console's commands only, not {}",
            other.describe()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::apply;

    fn token(name: &str) -> AdminToken {
        AdminToken {
            name: name.into(),
            secret_sha256: [name.len() as u8; 32],
            created_at: 0,
            created_by: "bootstrap".into(),
        }
    }

    fn session(id: u8, actor: &str, expires_at: i64) -> UiSession {
        UiSession {
            id_sha256: [id; 32],
            actor: actor.into(),
            from: "192.0.2.1".into(),
            created_at: 1000,
            expires_at,
        }
    }

    fn run(inv: &mut Inventory, at: i64, command: Command) -> Result<Outcome, Refusal> {
        apply(inv, &Request::new("admin", at, command))
    }

    /// A session signs in until it expires, is closed, or its token is gone; opening one
    /// for a token that does not exist, or already expired, is refused.
    #[test]
    fn sessions_live_until_expiry_sign_out_or_their_token_goes() {
        let mut inv = Inventory {
            admin_tokens: vec![token("admin"), token("ops")],
            ..Default::default()
        };
        let open = |s: UiSession| Command::OpenUiSession { session: s };
        run(&mut inv, 1000, open(session(1, "admin", 2000))).expect("opened");
        run(&mut inv, 1000, open(session(2, "ops", 2000))).expect("opened");
        assert_eq!(
            run(&mut inv, 1000, open(session(3, "nobody", 2000))).map_err(|e| e.code()),
            Err("session_refused")
        );
        assert_eq!(
            run(&mut inv, 1000, open(session(3, "admin", 1000))).map_err(|e| e.code()),
            Err("session_refused"),
            "already expired"
        );
        assert_eq!(
            inv.ui_session(&[1; 32], 1999).map(|s| &s.actor[..]),
            Some("admin")
        );
        assert!(inv.ui_session(&[1; 32], 2000).is_none(), "expired");
        assert!(inv.ui_session(&[9; 32], 1500).is_none(), "unknown");

        run(
            &mut inv,
            1100,
            Command::CloseUiSession { id_sha256: [1; 32] },
        )
        .expect("closed");
        assert!(inv.ui_session(&[1; 32], 1100).is_none(), "signed out");
        run(
            &mut inv,
            1100,
            Command::CloseUiSession { id_sha256: [1; 32] },
        )
        .expect("closing twice is fine");

        inv.admin_tokens.retain(|t| t.name != "ops");
        assert!(
            inv.ui_session(&[2; 32], 1100).is_none(),
            "its token is gone"
        );
    }

    /// Expired sessions go as new ones open, and the oldest goes past the cap.
    #[test]
    fn expired_sessions_are_dropped_and_the_count_is_capped() {
        let mut inv = Inventory {
            admin_tokens: vec![token("admin")],
            ..Default::default()
        };
        for i in 0..MAX_UI_SESSIONS {
            let mut s = session(0, "admin", 5000);
            s.id_sha256[..8].copy_from_slice(&(i as u64).to_be_bytes());
            run(&mut inv, 1000, Command::OpenUiSession { session: s }).expect("opened");
        }
        assert_eq!(inv.ui_sessions.len(), MAX_UI_SESSIONS);
        let mut last = session(0xff, "admin", 5000);
        last.id_sha256[0] = 0xff;
        run(&mut inv, 1000, Command::OpenUiSession { session: last }).expect("opened");
        assert_eq!(inv.ui_sessions.len(), MAX_UI_SESSIONS);
        assert!(inv.ui_session(&[0; 32], 1000).is_none(), "the oldest went");
        run(
            &mut inv,
            6000,
            Command::OpenUiSession {
                session: session(7, "admin", 9000),
            },
        )
        .expect("opened");
        assert_eq!(inv.ui_sessions.len(), 1, "the expired went");
    }

    /// The session's secret never reaches the audit or the log: only its hash is there.
    #[test]
    fn the_audit_names_the_actor_and_address_only() {
        let mut inv = Inventory {
            admin_tokens: vec![token("admin")],
            ..Default::default()
        };
        let c = Command::OpenUiSession {
            session: session(1, "admin", 2000),
        };
        assert_eq!(c.min_version(), 4);
        run(&mut inv, 1000, c).expect("opened");
        let what = &inv.audit.last().expect("audited").what;
        assert!(
            what.contains("admin") && what.contains("192.0.2.1"),
            "{what}"
        );
    }
}
