//! The session gate: who may reach `s-<slug>.<exposure>.<domain>`.
//! Shared by the `/api/v2/auth/session-proxy` endpoint (Caddy's
//! `forward_auth`) and the built-in proxy, so both decide alike. The order
//! of the checks is API.md's, and it matters: an anonymous caller learns
//! nothing about which slugs exist.

use crate::model::{Exposure, Session, SessionStatus, Slug, User};

/// What the gate answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// 200, with the upstream to proxy to.
    Allow { slug: Slug },
    /// 401: no valid login.
    Unauthenticated,
    /// 404: not a session host, or no running session behind it.
    NotFound,
    /// 403: a login that may not use this session.
    Forbidden { reason: &'static str },
}

/// The `Host` header of a session host, parsed: lower-cased, port stripped,
/// `s-<8 chars a-z2-7>.(external|internal).<domain>` exactly.
pub fn parse_session_host(host: &str, base_domain: &str) -> Option<(Slug, Exposure)> {
    let host = host.trim().to_ascii_lowercase();
    // Strip a port, but not from something that is not host:port.
    let host = match host.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h.to_owned(),
        Some(_) => return None,
        None => host,
    };
    let rest = host.strip_suffix(&base_domain.to_ascii_lowercase())?.strip_suffix('.')?;
    let (label, exposure) = rest.split_once('.')?;
    let exposure = match exposure {
        "external" => Exposure::External,
        "internal" => Exposure::Internal,
        _ => return None,
    };
    let slug = label.strip_prefix("s-")?.parse().ok()?;
    Some((slug, exposure))
}

/// The gate's decision, in API.md's order. `user` is the caller's live
/// login, if any; `session` is the session with the host's slug, if any.
pub fn decide(user: Option<&User>, host: Option<(Slug, Exposure)>, session: Option<&Session>) -> Decision {
    let Some(user) = user else { return Decision::Unauthenticated };
    let Some((slug, exposure)) = host else { return Decision::NotFound };
    let Some(session) =
        session.filter(|s| s.slug == slug && s.status == SessionStatus::Running && s.exposure == exposure)
    else {
        return Decision::NotFound;
    };
    if !user.may_use(exposure) {
        return Decision::Forbidden { reason: "Internal sessions need the internal entitlement." };
    }
    if session.user_id != user.id && !user.is_admin() {
        return Decision::Forbidden { reason: "Session access denied." };
    }
    Decision::Allow { slug }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{self, Email, GpuId, PackId, Role, UserId};

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
    fn hosts_parse_strictly() {
        let ok = |h: &str| parse_session_host(h, D);
        let slug: Slug = "abcdefgh".parse().expect("slug");
        assert_eq!(ok("s-abcdefgh.external.medforge.example.org"), Some((slug.clone(), Exposure::External)));
        assert_eq!(ok("S-ABCDEFGH.Internal.MedForge.Example.Org:443"), Some((slug, Exposure::Internal)));
        for bad in [
            "medforge.example.org",
            "s-abcdefgh.medforge.example.org",
            "s-abcdefgh.public.medforge.example.org",
            "s-abcdefg.external.medforge.example.org",
            "s-abcdefgh1.external.medforge.example.org",
            "s-abcdefg1.external.medforge.example.org",
            "x-abcdefgh.external.medforge.example.org",
            "s-abcdefgh.external.medforge.example.org.evil.org",
            "s-abcdefgh.external.evilmedforge.example.org",
            "a.s-abcdefgh.external.medforge.example.org",
            "s-abcdefgh.external.medforge.example.org:",
            "s-abcdefgh.external.medforge.example.org:80:80",
            "",
        ] {
            assert_eq!(parse_session_host(bad, D), None, "{bad:?}");
        }
    }

    #[test]
    fn decisions_follow_the_documented_order() {
        let owner = user(Role::User, false);
        let other = user(Role::User, false);
        let admin = user(Role::Admin, false);
        let running = session(&owner, Exposure::External, SessionStatus::Running);
        let host = parse_session_host("s-abcdefgh.external.medforge.example.org", D);
        assert_eq!(decide(None, None, None), Decision::Unauthenticated, "anonymous first, whatever the host");
        assert_eq!(decide(Some(&owner), None, Some(&running)), Decision::NotFound);
        assert_eq!(decide(Some(&owner), host.clone(), None), Decision::NotFound);
        assert_eq!(decide(Some(&owner), host.clone(), Some(&running)), Decision::Allow { slug: running.slug.clone() });
        assert_eq!(decide(Some(&admin), host.clone(), Some(&running)), Decision::Allow { slug: running.slug.clone() });
        assert_eq!(
            decide(Some(&other), host.clone(), Some(&running)),
            Decision::Forbidden { reason: "Session access denied." }
        );
        let stopped = session(&owner, Exposure::External, SessionStatus::Stopped);
        assert_eq!(decide(Some(&owner), host.clone(), Some(&stopped)), Decision::NotFound);
        let internal_host = parse_session_host("s-abcdefgh.internal.medforge.example.org", D);
        assert_eq!(decide(Some(&owner), internal_host.clone(), Some(&running)), Decision::NotFound, "wrong exposure");
        let internal = session(&owner, Exposure::Internal, SessionStatus::Running);
        assert!(matches!(decide(Some(&owner), internal_host.clone(), Some(&internal)), Decision::Forbidden { .. }));
        let entitled = User { can_use_internal: true, ..owner.clone() };
        assert!(matches!(decide(Some(&entitled), internal_host, Some(&internal)), Decision::Allow { .. }));
    }
}
