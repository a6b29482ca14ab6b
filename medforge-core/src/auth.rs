//! Authentication primitives: password hashing, session tokens, expiry, and
//! the Origin rule; plus [`Authenticator`], which ties them to a [`Store`].
//!
//! Tokens are 32 random bytes, sent to the browser as base64url. The store
//! keeps only `HMAC-SHA256(server_secret, token)`: a leaked database does not
//! let anyone log in, and a lookup is one indexed equality match (no
//! per-row password-style hashing on the gate's hot path).

use std::fmt;
use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use hmac::{KeyInit, Mac};
use time::{Duration, OffsetDateTime};

use crate::model::{self, Email, Login, LoginId, User};
use crate::store::{NewLogin, NewUser, Store, StoreError};

/// Password length bounds, in characters (docs/api.md).
pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Invalid email or password.")]
    InvalidCredentials,
    #[error("password must be {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters")]
    PasswordPolicy,
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks the password policy (length only: long passphrases beat rules).
pub fn check_password_policy(password: &str) -> Result<(), AuthError> {
    let chars = password.chars().count();
    if (PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&chars) { Ok(()) } else { Err(AuthError::PasswordPolicy) }
}

/// A new account with this password, checked against the policy and
/// hashed: what sign-up, `medforge user add` and the first admin share.
pub fn new_user(email: Email, password: &str) -> Result<NewUser, AuthError> {
    check_password_policy(password)?;
    Ok(NewUser::new(email, hash_password(password)?))
}

/// Hashes a password with argon2id and a random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hashing(e.to_string()))
}

/// Verifies a password against a PHC string. A malformed hash is a mismatch.
pub fn verify_password(password: &str, phc: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), phc).is_ok()
}

/// Argon2 is deliberately slow (tens of milliseconds of one core) and
/// big (19 MiB of working memory a hash): run on the async workers, a
/// burst of sign-ins would stall every other request, the session proxy's
/// included. The async forms below hash on a pool of their own, one thread
/// per core, in arrival order; the rest wait their turn without holding a
/// worker. Not tokio's blocking pool, which starts another thread whenever
/// none is idle at that instant: here at most one hash per core is ever in
/// memory. (Whether a freed 19 MiB goes back to the system is the
/// allocator's business: glibc's kept them; the `medforge` binary uses
/// mimalloc, docs/decisions.md.)
struct HashingPool {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

fn hashing_pool() -> &'static HashingPool {
    static POOL: std::sync::OnceLock<HashingPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for n in 0..std::thread::available_parallelism().map(usize::from).unwrap_or(2) {
            let queue = queue.clone();
            let worker = move || {
                loop {
                    // One worker waits on the queue at a time; the lock is
                    // let go before the job runs.
                    let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(job) = job else { return };
                    // A panicking hash answers its caller with an error
                    // (its reply is dropped) and leaves the worker alive.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            };
            if let Err(e) = std::thread::Builder::new().name(format!("medforge-hash-{n}")).spawn(worker) {
                tracing::error!(error = %e, "could not start a password-hashing thread");
            }
        }
        HashingPool { jobs }
    })
}

/// Runs `work` on the hashing pool and waits for it.
async fn hashing<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AuthError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = Box::new(move || {
        // A caller gone (its client hung up) while the job waited: no
        // hash for nobody, the next caller's turn comes sooner.
        if !reply.is_closed() {
            let _ = reply.send(work());
        }
    });
    hashing_pool().jobs.send(job).map_err(|_| AuthError::Hashing("the hashing pool is gone".into()))?;
    answer.await.map_err(|_| AuthError::Hashing("the hash did not finish".into()))
}

/// [`hash_password`] off the async workers.
pub async fn hash_password_async(password: &str) -> Result<String, AuthError> {
    let password = password.to_owned();
    hashing(move || hash_password(&password)).await?
}

/// [`verify_password`] off the async workers.
pub async fn verify_password_async(password: &str, phc: &str) -> bool {
    let (password, phc) = (password.to_owned(), phc.to_owned());
    hashing(move || verify_password(&password, &phc)).await.unwrap_or(false)
}

/// [`new_user`] off the async workers.
pub async fn new_user_async(email: Email, password: &str) -> Result<NewUser, AuthError> {
    check_password_policy(password)?;
    Ok(NewUser::new(email, hash_password_async(password).await?))
}

/// A session token as the browser holds it. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginToken(String);

impl LoginToken {
    pub const BYTES: usize = 32;

    /// 32 bytes from the thread-local CSPRNG, base64url without padding.
    pub fn generate() -> Self {
        let mut bytes = [0u8; Self::BYTES];
        rand::fill(&mut bytes);
        Self(data_encoding::BASE64URL_NOPAD.encode(&bytes))
    }

    /// Wraps a token received from a client (e.g. a cookie value).
    pub fn from_client(value: &str) -> Self {
        Self(value.to_owned())
    }

    /// The value to put in the cookie.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LoginToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LoginToken(<redacted>)")
    }
}

/// The server secret that keys token hashes. `Debug` never shows it.
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl TokenKey {
    /// At least 32 bytes; shorter secrets are refused.
    pub fn new(secret: &[u8]) -> Result<Self, TokenKeyError> {
        if secret.len() < 32 {
            return Err(TokenKeyError);
        }
        Ok(Self(secret.to_vec()))
    }

    /// A fresh random key (for a first start, or tests).
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; 32];
        rand::fill(&mut bytes[..]);
        Self(bytes)
    }

    /// `HMAC-SHA256(key, token)` as lowercase hex: what the store keeps.
    pub fn hash(&self, token: &LoginToken) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(token.0.as_bytes());
        data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes())
    }
}

impl TokenKey {
    /// `HMAC-SHA256(key, purpose ‖ 0 ‖ token)` as lowercase hex: a value
    /// bound to one token that only this server can compute (the web UI's
    /// CSRF token is `derive("csrf", login)`).
    pub fn derive(&self, purpose: &str, token: &LoginToken) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(token.0.as_bytes());
        data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes())
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the server secret must be at least 32 bytes")]
pub struct TokenKeyError;

/// How long a login lives.
#[derive(Debug, Clone, Copy)]
pub struct ExpiryPolicy {
    /// Unused for this long, a login ends (sliding: each use extends it).
    pub idle: Duration,
    /// A login ends this long after it was created, however much it is used.
    pub absolute: Duration,
    /// `last_seen_at` is written at most this often, so that the hot path
    /// rarely writes.
    pub touch_every: Duration,
}

impl Default for ExpiryPolicy {
    fn default() -> Self {
        Self { idle: Duration::days(7), absolute: Duration::days(30), touch_every: Duration::minutes(5) }
    }
}

/// What [`ExpiryPolicy::check`] decided about a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginState {
    Valid { needs_touch: bool },
    Revoked,
    Expired,
}

impl ExpiryPolicy {
    pub fn check(&self, login: &Login, now: OffsetDateTime) -> LoginState {
        if login.revoked_at.is_some() {
            LoginState::Revoked
        } else if now >= login.expires_at || now >= login.last_seen_at + self.idle {
            LoginState::Expired
        } else {
            LoginState::Valid { needs_touch: now >= login.last_seen_at + self.touch_every }
        }
    }
}

/// Who made a login request, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Sign-up, log-in, token checks and log-out over a [`Store`].
#[derive(Clone)]
pub struct Authenticator {
    store: Arc<dyn Store>,
    key: TokenKey,
    policy: ExpiryPolicy,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, key: TokenKey, policy: ExpiryPolicy) -> Self {
        Self { store, key, policy }
    }

    pub fn key(&self) -> &TokenKey {
        &self.key
    }

    pub fn policy(&self) -> &ExpiryPolicy {
        &self.policy
    }

    /// Creates an account with role `user` and logs it in.
    /// A taken email gives [`StoreError::EmailTaken`].
    pub async fn signup(
        &self,
        email: Email,
        password: &str,
        client: ClientInfo,
    ) -> Result<(User, LoginToken), AuthError> {
        let user = self.store.create_user(new_user_async(email, password).await?).await?;
        let token = self.open_login(&user, client).await?;
        Ok((user, token))
    }

    /// [`Self::signup`] with an invite: the account is made only if the
    /// invite whose token hashes to `invite_hash` is open, which it then
    /// no longer is ([`StoreError::InviteUnusable`] otherwise).
    pub async fn signup_invited(
        &self,
        email: Email,
        password: &str,
        invite_hash: &str,
        client: ClientInfo,
    ) -> Result<(User, LoginToken), AuthError> {
        let new = new_user_async(email, password).await?;
        let user = self.store.create_user_with_invite(new, invite_hash, model::now()).await?;
        let token = self.open_login(&user, client).await?;
        Ok((user, token))
    }

    /// Checks the password and opens a login. Unknown email and wrong
    /// password give the same error, after the same amount of hashing work.
    pub async fn login(
        &self,
        email: &Email,
        password: &str,
        client: ClientInfo,
    ) -> Result<(User, LoginToken), AuthError> {
        let Some((user, phc)) = self.store.user_credentials(email).await? else {
            // Spend the time a real check would, so response timing does not
            // tell which emails have accounts.
            let _ = verify_password_async(password, dummy_hash()).await;
            return Err(AuthError::InvalidCredentials);
        };
        if !verify_password_async(password, &phc).await {
            return Err(AuthError::InvalidCredentials);
        }
        let token = self.open_login(&user, client).await?;
        Ok((user, token))
    }

    async fn open_login(&self, user: &User, client: ClientInfo) -> Result<LoginToken, AuthError> {
        let token = LoginToken::generate();
        let now = model::now();
        self.store
            .create_login(NewLogin {
                id: LoginId::new_random(),
                user_id: user.id,
                token_hash: self.key.hash(&token),
                created_at: now,
                expires_at: now + self.policy.absolute,
                ip: client.ip,
                user_agent: client.user_agent,
            })
            .await?;
        Ok(token)
    }

    /// The user behind a token, if the login is live at `now`; slides the
    /// idle expiry (throttled). Revoked, expired and unknown tokens give `None`.
    pub async fn authenticate(
        &self,
        token: &LoginToken,
        now: OffsetDateTime,
    ) -> Result<Option<(User, Login)>, StoreError> {
        self.authenticate_hash(&self.key.hash(token), now).await
    }

    /// [`Authenticator::authenticate`] for a login known by its token's
    /// hash (a session host's pass keeps the hash, never the token).
    pub async fn authenticate_hash(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(User, Login)>, StoreError> {
        let Some((login, user)) = self.store.login_by_token_hash(token_hash).await? else {
            return Ok(None);
        };
        match self.policy.check(&login, now) {
            LoginState::Valid { needs_touch } => {
                if needs_touch {
                    self.store.touch_login(login.id, now).await?;
                }
                Ok(Some((user, login)))
            }
            LoginState::Revoked | LoginState::Expired => Ok(None),
        }
    }

    /// Ends the login behind a token. Returns whether one was live.
    pub async fn logout(&self, token: &LoginToken) -> Result<bool, StoreError> {
        match self.store.login_by_token_hash(&self.key.hash(token)).await? {
            Some((login, _)) => self.store.revoke_login(login.id, model::now()).await,
            None => Ok(false),
        }
    }
}

/// A valid argon2id hash of a random password, computed once, for
/// [`Authenticator::login`]'s constant-work path.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password(LoginToken::generate().expose()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of hashes runs on the pool's own threads, one per core, and
    /// every caller gets its answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_hashes_runs_on_one_thread_per_core() {
        let phc = hash_password("correct horse battery").expect("hash");
        let checks = (0..16).map(|n| {
            let phc = phc.clone();
            async move { verify_password_async(if n % 2 == 0 { "correct horse battery" } else { "wrong" }, &phc).await }
        });
        let answers = futures::future::join_all(checks).await;
        assert_eq!(answers, (0..16).map(|n| n % 2 == 0).collect::<Vec<_>>());
        let names: Vec<String> = std::fs::read_dir("/proc/self/task")
            .expect("tasks")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|n| n.starts_with("medforge-hash"))
            .collect();
        assert_eq!(names.len(), std::thread::available_parallelism().map(usize::from).unwrap_or(2), "{names:?}");
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let phc = hash_password("correct horse battery").expect("hash");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("correct horse battery!", &phc));
        assert!(!verify_password("anything", "not a phc string"));
        // Salted: the same password hashes differently each time.
        assert_ne!(phc, hash_password("correct horse battery").expect("hash"));
    }

    #[test]
    fn password_policy_counts_characters() {
        assert!(check_password_policy("1234567").is_err());
        assert!(check_password_policy("12345678").is_ok());
        assert!(check_password_policy(&"é".repeat(128)).is_ok());
        assert!(check_password_policy(&"x".repeat(129)).is_err());
    }

    #[test]
    fn tokens_are_32_random_bytes_base64url() {
        let a = LoginToken::generate();
        let b = LoginToken::generate();
        assert_ne!(a, b);
        let raw = data_encoding::BASE64URL_NOPAD.decode(a.expose().as_bytes()).expect("base64url");
        assert_eq!(raw.len(), 32);
        assert_eq!(format!("{a:?}"), "LoginToken(<redacted>)");
    }

    #[test]
    fn token_hash_is_keyed_hmac_sha256() {
        let token = LoginToken::from_client("abc");
        let k1 = TokenKey::new(&[1u8; 32]).expect("key");
        let k2 = TokenKey::new(&[2u8; 32]).expect("key");
        let h1 = k1.hash(&token);
        assert_eq!(h1.len(), 64);
        assert_eq!(h1, k1.hash(&token));
        assert_ne!(h1, k2.hash(&token));
        assert!(!h1.contains("abc"));
        assert!(TokenKey::new(&[0u8; 31]).is_err());
        // RFC 4231 test case 2 pins the construction to HMAC-SHA256.
        let rfc = TokenKey(b"Jefe".to_vec());
        assert_eq!(
            rfc.hash(&LoginToken::from_client("what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn login_at(created: OffsetDateTime, last_seen: OffsetDateTime) -> Login {
        Login {
            id: LoginId::new_random(),
            user_id: crate::model::UserId::new_random(),
            token_hash: String::new(),
            created_at: created,
            expires_at: created + Duration::days(30),
            last_seen_at: last_seen,
            revoked_at: None,
            ip: None,
            user_agent: None,
        }
    }

    #[test]
    fn expiry_slides_with_use_and_caps_at_thirty_days() {
        let p = ExpiryPolicy::default();
        let t0 = model::now();
        let fresh = login_at(t0, t0);
        assert_eq!(p.check(&fresh, t0), LoginState::Valid { needs_touch: false });
        assert_eq!(p.check(&fresh, t0 + Duration::minutes(6)), LoginState::Valid { needs_touch: true });
        assert_eq!(p.check(&fresh, t0 + Duration::days(7)), LoginState::Expired);
        // Used on day 6: still good on day 12.
        let used = login_at(t0, t0 + Duration::days(6));
        assert!(matches!(p.check(&used, t0 + Duration::days(12)), LoginState::Valid { .. }));
        // Used every day, but 30 days old: over.
        let old = login_at(t0, t0 + Duration::days(29) + Duration::hours(23));
        assert_eq!(p.check(&old, t0 + Duration::days(30)), LoginState::Expired);
        let mut revoked = login_at(t0, t0);
        revoked.revoked_at = Some(t0);
        assert_eq!(p.check(&revoked, t0), LoginState::Revoked);
    }
}
