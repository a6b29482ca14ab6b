//! The session gate: who may reach `s-<slug>.<exposure>.<domain>`.
//! Shared by the `/api/v2/auth/session-proxy` endpoint (Caddy's
//! `forward_auth`) and the built-in proxy, so both decide alike. The order
//! of the checks is docs/api.md's, and it matters: an anonymous caller learns
//! nothing about which slugs exist.

use crate::host::SessionHost;
use crate::model::{Session, SessionStatus, Slug, User};

/// Who may pass: the gate's verdict before any upstream is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 200: this login may use the running session `slug`.
    Allow { slug: Slug },
    /// Anything else, and why.
    Refuse(Refusal),
}

/// Why the gate refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// 401: no valid login.
    Unauthenticated,
    /// 404: not a session host, or no running session behind it.
    NotFound,
    /// 403: an internal session, and a login without the entitlement.
    NotEntitled,
    /// 403: someone else's session, and a login that is no admin.
    NotYours,
}

impl Refusal {
    /// docs/api.md's words for it (the `detail` of the problem document).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Unauthenticated => "Authentication required.",
            Self::NotFound => "No running session at this host.",
            Self::NotEntitled => "Internal sessions need the internal entitlement.",
            Self::NotYours => "Session access denied.",
        }
    }

    /// The label the gate's metrics count it under.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::NotFound => "not_found",
            Self::NotEntitled | Self::NotYours => "forbidden",
        }
    }
}

/// The gate's verdict, in docs/api.md's order. `user` is the caller's live
/// login, if any; `host` the session host asked for, if the Host is one;
/// `session` is the session with the host's slug, if any.
pub fn decide(user: Option<&User>, host: Option<&SessionHost>, session: Option<&Session>) -> Verdict {
    let Some(user) = user else { return Verdict::Refuse(Refusal::Unauthenticated) };
    let Some(host) = host else { return Verdict::Refuse(Refusal::NotFound) };
    let Some(session) =
        session.filter(|s| s.slug == host.slug && s.status == SessionStatus::Running && s.exposure == host.exposure)
    else {
        return Verdict::Refuse(Refusal::NotFound);
    };
    if !user.may_use(host.exposure) {
        return Verdict::Refuse(Refusal::NotEntitled);
    }
    if session.user_id != user.id && !user.is_admin() {
        return Verdict::Refuse(Refusal::NotYours);
    }
    Verdict::Allow { slug: host.slug.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Host;
    use crate::model::{self, Email, Exposure, GpuId, PackId, Role, UserId};

    const D: &str = "medforge.example.org";

    fn user(role: Role, internal: bool) -> User {
        User {
            id: UserId::new_random(),
            email: "u@example.org".parse::<Email>().expect("email"),
            role,
            can_use_internal: internal,
            max_concurrent_sessions: 1,
            created_at: model::now(),
            workspace_quota_bytes: None,
            max_lifetime_secs: None,
        }
    }

    fn session(owner: &User, exposure: Exposure, status: SessionStatus) -> Session {
        Session {
            status,
            slug: "abcdefgh".parse().expect("slug"),
            ..Session::new_starting(owner.id, exposure, PackId::new_random(), GpuId(0), model::now())
        }
    }

    #[test]
    fn decisions_follow_the_documented_order() {
        let owner = user(Role::User, false);
        let other = user(Role::User, false);
        let admin = user(Role::Admin, false);
        let running = session(&owner, Exposure::External, SessionStatus::Running);
        let parse = |h: &str| SessionHost::parse(&h.parse::<Host>().expect("host"), D);
        let host = parse("s-abcdefgh.external.medforge.example.org");
        let host = host.as_ref();
        assert_eq!(
            decide(None, None, None),
            Verdict::Refuse(Refusal::Unauthenticated),
            "anonymous first, whatever the host"
        );
        assert_eq!(decide(Some(&owner), None, Some(&running)), Verdict::Refuse(Refusal::NotFound));
        assert_eq!(decide(Some(&owner), host, None), Verdict::Refuse(Refusal::NotFound));
        assert_eq!(decide(Some(&owner), host, Some(&running)), Verdict::Allow { slug: running.slug.clone() });
        assert_eq!(decide(Some(&admin), host, Some(&running)), Verdict::Allow { slug: running.slug.clone() });
        assert_eq!(decide(Some(&other), host, Some(&running)), Verdict::Refuse(Refusal::NotYours));
        let stopped = session(&owner, Exposure::External, SessionStatus::Stopped);
        assert_eq!(decide(Some(&owner), host, Some(&stopped)), Verdict::Refuse(Refusal::NotFound));
        let internal_host = parse("s-abcdefgh.internal.medforge.example.org");
        let internal_host = internal_host.as_ref();
        assert_eq!(
            decide(Some(&owner), internal_host, Some(&running)),
            Verdict::Refuse(Refusal::NotFound),
            "wrong exposure"
        );
        let internal = session(&owner, Exposure::Internal, SessionStatus::Running);
        assert!(decide(Some(&owner), internal_host, Some(&internal)) == Verdict::Refuse(Refusal::NotEntitled));
        let entitled = User { can_use_internal: true, ..owner.clone() };
        assert!(matches!(decide(Some(&entitled), internal_host, Some(&internal)), Verdict::Allow { .. }));
    }
}
