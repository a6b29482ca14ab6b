//! The domain model: typed ids, enums and the records that the store keeps.
//!
//! Records mirror the fields of `docs/api.md` so that the server can serialise them
//! without a second set of types. Timestamps are UTC and carry millisecond
//! precision, the precision both stores keep (see `docs/decisions.md`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A value that could not be parsed into one of the model's types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {reason}")]
pub struct ParseError {
    pub what: &'static str,
    pub reason: String,
}

impl ParseError {
    fn new(what: &'static str, reason: impl Into<String>) -> Self {
        Self { what, reason: reason.into() }
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = "uuid"))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|e| ParseError::new(stringify!($name), e.to_string()))
            }
        }
    };
}

uuid_id!(
    /// One deployment: its database, made once. Every container it starts
    /// carries it, so that two deployments on one engine never take each
    /// other's containers for orphans.
    DeploymentId
);
uuid_id!(
    /// A user account.
    UserId
);
uuid_id!(
    /// A browser login (a row of `auth_sessions`), not a code-server session.
    LoginId
);
uuid_id!(
    /// A code-server session.
    SessionId
);
uuid_id!(
    /// An invitation to sign up.
    InviteId
);
uuid_id!(
    /// A pack: the container image sessions run.
    PackId
);
uuid_id!(
    /// A place in the wait queue for a GPU.
    QueueEntryId
);

/// The pack every session gets when the request names none; seeded on start.
pub const DEFAULT_PACK_ID: PackId = PackId(Uuid::from_u128(0x100));

/// A physical GPU, by its index on the host (NVML's and `nvidia-smi`'s index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct GpuId(pub u32);

impl fmt::Display for GpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A session's public name: 8 characters of lowercase base32 (`a-z2-7`),
/// used in `s-<slug>.<exposure>.<domain>` and `mf-session-<slug>`.
///
/// ```
/// use medforge_core::model::Slug;
/// let slug = Slug::generate();
/// assert_eq!(slug.as_str().parse::<Slug>().ok(), Some(slug));
/// assert!("ABCDEFGH".parse::<Slug>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

impl Slug {
    pub const LEN: usize = 8;

    /// A fresh slug: 40 bits from the thread-local CSPRNG, base32-encoded.
    /// Uniqueness is the store's job (a unique index, retried on collision).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 5];
        rand::fill(&mut bytes);
        let text = data_encoding::BASE32_NOPAD.encode(&bytes).to_ascii_lowercase();
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Slug {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.len() == Self::LEN && s.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::new("slug", "expected 8 characters of lowercase base32 (a-z, 2-7)"))
        }
    }
}

impl TryFrom<String> for Slug {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Slug> for String {
    fn from(s: Slug) -> String {
        s.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, trimmed and lower-cased so that uniqueness ignores case.
///
/// The check is deliberately shallow (one `@`, something on each side, no
/// spaces, at most 254 bytes): the only real test of an address is mail.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What follows the `@` (lower case, as the whole address is).
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

impl FromStr for Email {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_lowercase();
        let bad = |reason: &str| Err(ParseError::new("email", reason));
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return bad("must be 1 to 254 characters");
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("must not contain spaces");
        }
        match s.split_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => Ok(Self(s)),
            _ => bad("must look like name@example.org"),
        }
    }
}

impl TryFrom<String> for Email {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Defines a string-backed enum with `as_str`, `FromStr`, `Display` and serde
/// in the same lower-case spelling that the database and the API use.
macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        // utoipa does not read the variants' `serde(rename)` through the
        // macro; every text is the variant's name in lower case (a unit test
        // in the server holds the schema to `as_str`).
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(rename_all = "lowercase"))]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(ParseError::new(stringify!($name), format!("unknown value {other:?}"))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Where a session is reachable: `external` sessions have internet egress,
    /// `internal` ones run on a network without it and need an entitlement.
    Exposure { External => "external", Internal => "internal" }
);

string_enum!(
    /// A user's role. Admins may read and stop any session and manage users and GPUs.
    Role { User => "user", Admin => "admin" }
);

string_enum!(
    /// Which exposures a pack may be started in.
    PackExposure { External => "external", Internal => "internal", Both => "both" }
);

impl PackExposure {
    pub fn allows(self, exposure: Exposure) -> bool {
        matches!(
            (self, exposure),
            (PackExposure::Both, _)
                | (PackExposure::External, Exposure::External)
                | (PackExposure::Internal, Exposure::Internal)
        )
    }
}

string_enum!(
    /// A session's place in its lifecycle (see docs/architecture.md, Session lifecycle).
    SessionStatus {
        Reserved => "reserved",
        Starting => "starting",
        Running => "running",
        Stopping => "stopping",
        Stopped => "stopped",
        Error => "error",
    }
);

impl SessionStatus {
    /// The statuses of a session with a container (or one on its way):
    /// reconciliation, polling and the gate look at these.
    pub const ACTIVE: &'static [SessionStatus] =
        &[SessionStatus::Starting, SessionStatus::Running, SessionStatus::Stopping];

    /// The statuses that hold a GPU and count against a user's limit: the
    /// active ones and `reserved`, a GPU the queue offered and kept for a
    /// user until they claim it (`gpu_active` in the migrations says the same).
    pub const HOLDING: &'static [SessionStatus] =
        &[SessionStatus::Reserved, SessionStatus::Starting, SessionStatus::Running, SessionStatus::Stopping];

    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }

    /// Whether a session in this status holds its GPU.
    pub fn holds_gpu(self) -> bool {
        Self::HOLDING.contains(&self)
    }

    /// Ended for good: `stopped` or `error`.
    pub fn is_terminal(self) -> bool {
        !self.holds_gpu()
    }

    /// Whether the lifecycle may move a session from `self` to `to`.
    /// Terminal statuses never change again.
    pub fn can_become(self, to: SessionStatus) -> bool {
        use SessionStatus::*;
        matches!(
            (self, to),
            (Reserved, Starting)
                | (Starting, Running | Stopping | Error)
                | (Running, Stopping | Error)
                | (Stopping, Stopped | Error)
        )
    }
}

/// Why a session ended (the row's `stop_reason`, `session.stop`'s `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(rename_all = "snake_case"))]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Its owner stopped it.
    User,
    /// An admin stopped someone else's session.
    Admin,
    /// Nobody used it for `sessions.idle_timeout`.
    Idle,
    /// It reached its lifetime (`sessions.max_lifetime` and its extensions).
    Lifetime,
    /// Its container exited or vanished under it.
    ContainerDeath,
    /// It never came up (the container failed, or a restart interrupted the start).
    StartFailed,
}

impl StopReason {
    pub const ALL: &'static [StopReason] = &[
        StopReason::User,
        StopReason::Admin,
        StopReason::Idle,
        StopReason::Lifetime,
        StopReason::ContainerDeath,
        StopReason::StartFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::User => "user",
            StopReason::Admin => "admin",
            StopReason::Idle => "idle",
            StopReason::Lifetime => "lifetime",
            StopReason::ContainerDeath => "container_death",
            StopReason::StartFailed => "start_failed",
        }
    }
}

impl FromStr for StopReason {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ParseError::new("StopReason", format!("unknown value {s:?}")))
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

string_enum!(
    /// Which rule will stop a session that its owner was warned about.
    WarningKind { Idle => "idle", Lifetime => "lifetime" }
);

/// A warning a session's owner was given: this rule stops it at `stops_at`
/// unless they act (use it, or extend it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Warning {
    pub kind: WarningKind,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub stops_at: OffsetDateTime,
    /// When the warning was given.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub given_at: OffsetDateTime,
}

/// The current time, truncated to the millisecond precision the stores keep,
/// so that a value written and read back compares equal.
pub fn now() -> OffsetDateTime {
    from_unix_ms(to_unix_ms(OffsetDateTime::now_utc()))
}

/// Milliseconds since the Unix epoch, as the stores keep timestamps.
pub fn to_unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The inverse of [`to_unix_ms`]; out-of-range values clamp to the epoch.
pub fn from_unix_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A user account, without its password hash (the store hands that out on its own, for a login).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub role: Role,
    pub can_use_internal: bool,
    pub max_concurrent_sessions: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// This user's workspace quota in bytes, set by an admin; `None`: the
    /// configured default. 0: none.
    pub workspace_quota_bytes: Option<u64>,
    /// This user's session lifetime in seconds, set by an admin; `None`:
    /// `sessions.max_lifetime`. 0: no limit.
    pub max_lifetime_secs: Option<u64>,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this user may start and open sessions of `exposure`.
    pub fn may_use(&self, exposure: Exposure) -> bool {
        exposure == Exposure::External || self.can_use_internal || self.is_admin()
    }
}

/// A user as the admin list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    #[serde(flatten)]
    pub user: User,
    pub active_session_count: u32,
}

/// A browser login. The token itself is never stored, only its keyed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub id: LoginId,
    pub user_id: UserId,
    pub token_hash: String,
    pub created_at: OffsetDateTime,
    /// The hard expiry: creation plus the absolute lifetime (30 days).
    pub expires_at: OffsetDateTime,
    /// Last use, for the sliding idle expiry; refreshed at most every few minutes.
    pub last_seen_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// An admin's invitation for one email address to sign up: a one-time
/// link whose token the store keeps only hashed, like a login's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub id: InviteId,
    pub email: Email,
    pub token_hash: String,
    /// The admin who invited.
    pub created_by: UserId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    /// The account made with it.
    pub used_by: Option<UserId>,
    pub revoked_at: Option<OffsetDateTime>,
}

string_enum!(
    /// Where an invite stands.
    InviteState {
        Open => "open",
        Used => "used",
        Revoked => "revoked",
        Expired => "expired",
    }
);

impl Invite {
    /// Its state at `now`: used and revoked are for good, expiry is by the clock.
    pub fn state(&self, now: OffsetDateTime) -> InviteState {
        if self.used_at.is_some() {
            InviteState::Used
        } else if self.revoked_at.is_some() {
            InviteState::Revoked
        } else if now >= self.expires_at {
            InviteState::Expired
        } else {
            InviteState::Open
        }
    }
}

string_enum!(
    /// Where a queue entry stands: `waiting` for a GPU, or `offered` one
    /// (kept for the user by a `reserved` session until `offered_until`).
    QueueState { Waiting => "waiting", Offered => "offered" }
);

/// A user's place in the wait queue for a GPU of one exposure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueEntry {
    pub id: QueueEntryId,
    pub user_id: UserId,
    pub exposure: Exposure,
    /// The pack to start; `None`: the default.
    pub pack_id: Option<PackId>,
    /// Start the session as soon as a GPU is offered ("start for me").
    pub auto_start: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub joined_at: OffsetDateTime,
    pub state: QueueState,
    /// The `reserved` session that keeps the offered GPU.
    pub session_id: Option<SessionId>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub offered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub offered_until: Option<OffsetDateTime>,
}

/// A container image that sessions run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pack {
    pub id: PackId,
    pub name: String,
    pub exposure: PackExposure,
    pub image_ref: String,
    pub image_digest: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub deprecated_at: Option<OffsetDateTime>,
}

/// A GPU row with the session that holds it, if any (the admin GPU board).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuDevice {
    pub id: GpuId,
    pub enabled: bool,
    pub session_id: Option<SessionId>,
    pub user_id: Option<UserId>,
    /// When the holding session was created.
    #[serde(with = "time::serde::rfc3339::option")]
    pub held_since: Option<OffsetDateTime>,
    /// What the driver calls it, when it was discovered (`GPU-...`).
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub memory_total_bytes: Option<u64>,
}

/// A code-server session: one container, one GPU, one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub exposure: Exposure,
    pub pack_id: PackId,
    pub status: SessionStatus,
    pub container_id: Option<String>,
    pub gpu_id: GpuId,
    pub slug: Slug,
    /// Where the workspace is: a ZFS dataset, or a directory under
    /// DirStorage (the API field keeps its documented name, `workspace_zfs`).
    #[serde(rename = "workspace_zfs")]
    pub workspace: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub stopped_at: Option<OffsetDateTime>,
    pub error_message: Option<String>,
    /// When its lifetime ends (a `reserved` session: when the offer
    /// lapses); `None`: no lifetime limit.
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<OffsetDateTime>,
    /// The last time its owner used it (through the proxy) or its GPU was busy.
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_activity_at: Option<OffsetDateTime>,
    /// How many times its lifetime was extended.
    pub extensions: u32,
    /// The warning its owner was given, while it stands.
    pub warning: Option<Warning>,
    /// Why it ended, once it has.
    pub stop_reason: Option<StopReason>,
}

impl Session {
    /// A session as allocation creates it: `starting`, with a fresh id and
    /// slug, and nothing recorded about its container or workspace yet.
    pub fn new_starting(
        user_id: UserId,
        exposure: Exposure,
        pack_id: PackId,
        gpu_id: GpuId,
        created_at: OffsetDateTime,
    ) -> Self {
        Self {
            id: SessionId::new_random(),
            user_id,
            exposure,
            pack_id,
            status: SessionStatus::Starting,
            container_id: None,
            gpu_id,
            slug: Slug::generate(),
            workspace: None,
            created_at,
            started_at: None,
            stopped_at: None,
            error_message: None,
            expires_at: None,
            last_activity_at: Some(created_at),
            extensions: 0,
            warning: None,
            stop_reason: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_eight_lowercase_base32_chars_and_parse_back() {
        for _ in 0..1000 {
            let slug = Slug::generate();
            assert_eq!(slug.as_str().len(), 8);
            assert_eq!(slug.as_str().parse::<Slug>().as_ref(), Ok(&slug));
        }
    }

    #[test]
    fn slug_parsing_rejects_anything_else() {
        for bad in ["", "abcdefg", "abcdefghi", "ABCDEFGH", "abcdefg1", "abcdefg8", "abc-efgh", "abcdéfg"] {
            assert!(bad.parse::<Slug>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        let e: Email = "  Alice@Example.ORG ".parse().expect("valid");
        assert_eq!(e.as_str(), "alice@example.org");
        for bad in ["", "alice", "@example.org", "alice@", "a b@example.org", "a@b@c"] {
            assert!(bad.parse::<Email>().is_err(), "{bad:?} accepted");
        }
        assert!(format!("{}@x.org", "a".repeat(250)).parse::<Email>().is_err());
    }

    #[test]
    fn status_machine_allows_only_forward_moves() {
        use SessionStatus::*;
        assert!(Starting.can_become(Running));
        assert!(Starting.can_become(Error));
        assert!(Running.can_become(Stopping));
        assert!(Stopping.can_become(Stopped));
        assert!(!Running.can_become(Starting));
        assert!(!Stopped.can_become(Running));
        assert!(!Error.can_become(Stopped));
        for s in SessionStatus::ALL {
            assert!(!s.can_become(*s), "{s} -> {s}");
            assert_eq!(s.as_str().parse::<SessionStatus>(), Ok(*s));
        }
        assert_eq!(SessionStatus::ALL.iter().filter(|s| s.is_active()).count(), 3);
    }

    #[test]
    fn pack_exposure_rules() {
        assert!(PackExposure::Both.allows(Exposure::Internal));
        assert!(PackExposure::External.allows(Exposure::External));
        assert!(!PackExposure::External.allows(Exposure::Internal));
        assert!(!PackExposure::Internal.allows(Exposure::External));
    }

    #[test]
    fn default_pack_id_is_the_documented_one() {
        assert_eq!(DEFAULT_PACK_ID.to_string(), "00000000-0000-0000-0000-000000000100");
    }

    #[test]
    fn unix_ms_round_trips() {
        let t = now();
        assert_eq!(from_unix_ms(to_unix_ms(t)), t);
    }
}
