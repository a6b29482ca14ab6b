//! Session-host passes: how a browser signed in on the UI host gets into a
//! session host without the login cookie ever going there
//! (docs/security.md, "The handshake"):
//!
//! 1. a session host asked without a valid pass sends the browser to the
//!    UI's `/sessions/enter?host=<session host>&next=<path>`;
//! 2. there, a signed-in user whom the gate lets in gets a one-time
//!    **code** ([`Passes::issue_code`]: one minute, one use, bound to that
//!    session host, user and login) and goes back to
//!    `<session host>/_medforge/enter?code=...&next=<path>`;
//! 3. the session host trades the code ([`Passes::take_code`]) for a
//!    **pass** ([`Passes::open_pass`]): a host-only cookie for that one host, which
//!    the gate then reads instead of the login.
//!
//! A pass is worth what its login is: the gate checks the login behind it
//! on every decision it does not have cached, so a logout, an expiry or a
//! password change ends every pass of that login. Codes and passes are
//! kept as keyed hashes, in memory: a restart forgets them, and the next
//! page load goes through the handshake again without a prompt. [`Passes::revoke`]
//! ends passes at once and tells open tunnels ([`Passes::revocations`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use medforge_core::auth::{LoginToken, TokenKey};
use medforge_core::host::SessionHost;
use medforge_core::model::{LoginId, Slug, UserId};

/// How long a code may wait to be traded for a pass.
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// Map sizes above which expired entries are swept on the next insert.
const SWEEP_ABOVE: usize = 10_000;

/// What a code or a pass lets in: `user`, through `login`, to `host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub host: SessionHost,
    pub user_id: UserId,
    pub login_id: LoginId,
    /// The login's token hash (what the store finds it by); never the token.
    pub login_hash: String,
}

/// What stops being allowed: the passes it covers go, and the tunnels
/// opened with them close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// The session stopped.
    Session(Slug),
    /// The login ended (a logout).
    Login(LoginId),
    /// What the user may do changed (password, role, entitlement): each
    /// tunnel closes and its client must pass the gate again.
    User(UserId),
}

impl Revoked {
    pub fn covers(&self, grant: &Grant) -> bool {
        match self {
            Self::Session(slug) => grant.host.slug == *slug,
            Self::Login(id) => grant.login_id == *id,
            Self::User(id) => grant.user_id == *id,
        }
    }
}

#[derive(Debug)]
struct Entry {
    grant: Grant,
    until: Instant,
}

impl Entry {
    /// Not expired, and for the session host `at`.
    fn valid_at(&self, at: &SessionHost) -> bool {
        self.until > Instant::now() && self.grant.host == *at
    }
}

#[derive(Debug, Default)]
struct Entries {
    codes: HashMap<String, Entry>,
    passes: HashMap<String, Entry>,
}

/// The codes and passes of this server.
#[derive(Debug)]
pub struct Passes {
    key: TokenKey,
    entries: Mutex<Entries>,
    revoked: tokio::sync::broadcast::Sender<Revoked>,
}

impl Passes {
    /// `key` hashes codes and passes as it hashes login tokens.
    pub fn new(key: TokenKey) -> Self {
        Self { key, entries: Mutex::default(), revoked: tokio::sync::broadcast::channel(256).0 }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh token for `grant`, valid for `lifetime`, kept (hashed) in
    /// the map `which` picks.
    fn insert(
        &self,
        which: fn(&mut Entries) -> &mut HashMap<String, Entry>,
        grant: Grant,
        lifetime: Duration,
    ) -> LoginToken {
        let token = LoginToken::generate();
        let mut entries = self.lock();
        let map = which(&mut entries);
        sweep(map);
        map.insert(self.key.hash(&token), Entry { grant, until: Instant::now() + lifetime });
        token
    }

    /// A fresh one-time code for `grant`.
    pub fn issue_code(&self, grant: Grant) -> LoginToken {
        self.insert(|e| &mut e.codes, grant, CODE_LIFETIME)
    }

    /// Takes `code`, once, at the session host `at` it was issued for: its
    /// grant. `None`: an unknown, used or expired code, or one for another
    /// host (which uses it up too).
    pub fn take_code(&self, code: &LoginToken, at: &SessionHost) -> Option<Grant> {
        let entry = self.lock().codes.remove(&self.key.hash(code))?;
        entry.valid_at(at).then_some(entry.grant)
    }

    /// A new pass for `grant`, valid for `lifetime`.
    pub fn open_pass(&self, grant: Grant, lifetime: Duration) -> LoginToken {
        self.insert(|e| &mut e.passes, grant, lifetime)
    }

    /// What `pass` grants at `at`: `None` for no pass, an expired or
    /// revoked one, or a pass of another host.
    pub fn grant(&self, pass: &LoginToken, at: &SessionHost) -> Option<Grant> {
        let entries = self.lock();
        let entry = entries.passes.get(&self.key.hash(pass))?;
        entry.valid_at(at).then(|| entry.grant.clone())
    }

    /// The key a pass's gate decisions are cached under.
    pub fn hash(&self, pass: &LoginToken) -> String {
        self.key.hash(pass)
    }

    /// Ends the passes (and codes) `what` covers, and tells the tunnels.
    pub fn revoke(&self, what: Revoked) {
        {
            let mut entries = self.lock();
            entries.codes.retain(|_, e| !what.covers(&e.grant));
            entries.passes.retain(|_, e| !what.covers(&e.grant));
        }
        let _ = self.revoked.send(what);
    }

    /// Hears every revocation from now on.
    pub fn revocations(&self) -> tokio::sync::broadcast::Receiver<Revoked> {
        self.revoked.subscribe()
    }
}

fn sweep(map: &mut HashMap<String, Entry>) {
    if map.len() > SWEEP_ABOVE {
        let now = Instant::now();
        map.retain(|_, e| e.until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medforge_core::host::Host;

    fn host(name: &str) -> SessionHost {
        SessionHost::parse(&name.parse::<Host>().expect("host"), "medforge.localhost").expect("session host")
    }

    fn grant(at: &SessionHost) -> Grant {
        Grant {
            host: at.clone(),
            user_id: UserId::new_random(),
            login_id: LoginId::new_random(),
            login_hash: "h".into(),
        }
    }

    #[test]
    fn a_code_is_traded_once_at_its_own_host() {
        let passes = Passes::new(TokenKey::generate());
        let (a, b) = (host("s-aaaaaaaa.external.medforge.localhost"), host("s-bbbbbbbb.external.medforge.localhost"));
        let code = passes.issue_code(grant(&a));
        assert!(passes.take_code(&code, &b).is_none(), "another host");
        assert!(passes.take_code(&code, &a).is_none(), "a refused try uses the code up");
        let code = passes.issue_code(grant(&a));
        let g = passes.take_code(&code, &a).expect("taken");
        assert!(passes.take_code(&code, &a).is_none(), "one use");
        let pass = passes.open_pass(g.clone(), Duration::from_secs(60));
        assert_eq!(passes.grant(&pass, &a), Some(g));
        assert_eq!(passes.grant(&pass, &b), None, "a pass is for its own host");
        assert_eq!(passes.grant(&code, &a), None, "a code is no pass");
    }

    #[test]
    fn revocations_end_passes_and_are_heard() {
        let passes = Passes::new(TokenKey::generate());
        let a = host("s-aaaaaaaa.internal.medforge.localhost");
        let mut heard = passes.revocations();
        let take = |g: Grant| (passes.open_pass(g.clone(), Duration::from_secs(60)), g);
        let (p1, g1) = take(grant(&a));
        let (p2, g2) = take(grant(&a));
        passes.revoke(Revoked::Login(g1.login_id));
        assert!(passes.grant(&p1, &a).is_none());
        assert!(passes.grant(&p2, &a).is_some());
        passes.revoke(Revoked::User(g2.user_id));
        assert!(passes.grant(&p2, &a).is_none());
        let (p3, _) = take(grant(&a));
        passes.revoke(Revoked::Session(a.slug.clone()));
        assert!(passes.grant(&p3, &a).is_none());
        assert_eq!(heard.try_recv().ok(), Some(Revoked::Login(g1.login_id)));
        let expired = take(grant(&a));
        let short = passes.open_pass(grant(&a), Duration::ZERO);
        assert!(passes.grant(&short, &a).is_none(), "expired");
        assert!(passes.grant(&expired.0, &a).is_some());
    }
}
