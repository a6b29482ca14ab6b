//! [`Error`]: every way the service layer refuses or fails. The adapters
//! map it once each: to an HTTP status and RFC 9457 problem document
//! (`crate::http::problem`) and to the web UI's words (`crate::ui::failure`).

use medforge_core::auth::AuthError;
use medforge_core::gate::Refusal;
use medforge_core::model::{self, Email};
use medforge_core::store::{AllocationError, StoreError};

/// Why the service layer did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No valid login.
    #[error("authentication required")]
    Unauthenticated,
    /// A log-in with an unknown email or a wrong password (never which).
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("forbidden: {0:?}")]
    Forbidden(Denied),
    #[error("not found: {0:?}")]
    NotFound(Missing),
    #[error("email already registered")]
    EmailTaken,
    /// The request conflicts with the state of things (queue, extension).
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    /// The deployment's sign-up policy (`auth.signup`) refused a sign-up.
    #[error("sign-up refused: {0:?}")]
    SignupRefused(SignupRefusal),
    /// A session could not be allocated (limits, GPUs, packs).
    #[error(transparent)]
    Allocation(AllocationError),
    /// Fields of the request that are not acceptable, each with the reason.
    #[error("invalid fields: {0:?}")]
    Invalid(Vec<FieldError>),
    #[error("too many attempts; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    /// Too many failed sign-ins to one account, from anywhere.
    #[error("too many failed sign-ins for this account; retry in {retry_after} s")]
    AccountLocked { retry_after: u64 },
    #[error("invalid pagination cursor")]
    InvalidCursor,
    /// A state-changing API request that is not JSON (a cross-site form
    /// can send anything but that).
    #[error("state-changing API requests must be JSON")]
    NotJson,
    /// Workspace storage (ZFS, the directory) did not answer.
    #[error("workspace storage unavailable")]
    StorageUnavailable,
    /// The isolation rules are not in place (a flush by hand, bridge
    /// netfilter turned off): no session starts until they are again.
    #[error("session isolation is not in place")]
    IsolationDown,
    /// Ours, not the caller's. The cause is logged where it is made
    /// ([`Error::internal`]) and never shown to a client.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Who may not do what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// An admin's route or page, and a login that is no admin.
    NotAdmin,
    /// Someone else's session.
    NotYourSession,
    /// An internal session without the internal entitlement.
    NotEntitled,
    /// An account change with a wrong current password.
    WrongPassword,
    /// A state-changing request from an origin that is not the UI's own.
    CrossOrigin,
    /// A form's post without the CSRF token of the login that sends it.
    BadCsrfToken,
}

/// What a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The caller already has a place in that queue.
    AlreadyQueued,
    /// The caller already holds as many sessions as they may.
    AtSessionLimit { limit: u32 },
    /// Only a running session with a lifetime can be extended.
    NotExtendable,
    /// Extended `max` times already.
    ExtensionsUsed { max: u32 },
    /// Others wait for a GPU of this exposure (`queue.extend_when_queued = false`).
    OthersWaiting,
}

impl Conflict {
    /// In words, for the API's problem document and the UI alike.
    pub fn sentence(&self) -> String {
        match self {
            Self::AlreadyQueued => "You are already in the queue for this kind of session.".into(),
            Self::AtSessionLimit { limit } => {
                format!("You already hold as many sessions as you may ({limit}); stop one before you queue.")
            }
            Self::NotExtendable => "Only a running session with a time limit can be extended.".into(),
            Self::ExtensionsUsed { max } => {
                format!("This session was extended {max} times already, the most it may be.")
            }
            Self::OthersWaiting => {
                "Others are waiting for a GPU, so sessions cannot be extended now; save your work.".into()
            }
        }
    }
}

/// Why a sign-up was refused (`auth.signup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignupRefusal {
    /// `closed`: admins make the accounts.
    Closed,
    /// `invite`, and no invite came with it.
    InviteOnly,
    /// The invite is used, revoked, expired or unknown.
    InviteUnusable,
    /// `domains`, an address elsewhere and no invite; the domains allowed.
    DomainNotAllowed(Vec<String>),
}

impl SignupRefusal {
    /// In words, for the API's problem document and the sign-up page alike.
    pub fn sentence(&self) -> String {
        match self {
            Self::Closed => "Sign-up is closed here: an admin makes the accounts.".into(),
            Self::InviteOnly => "Sign-up here is by invitation: ask an admin for an invite link.".into(),
            Self::InviteUnusable => "This invite link is used, revoked or expired: ask an admin for a new one.".into(),
            Self::DomainNotAllowed(domains) => format!(
                "Sign-up here is for addresses at {}; for another address, ask an admin for an invite link.",
                domains.join(", ")
            ),
        }
    }
}

/// What was not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Route,
    Session,
    User,
    Gpu,
    /// No open invite by that id.
    Invite,
    /// No running session at the session host asked for.
    SessionAtHost,
    /// No place in that queue.
    QueueEntry,
}

/// One bad field of a request, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl Error {
    /// One bad field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError { field: field.into(), message: message.into() }])
    }

    /// A failure of ours: the cause goes to the log here, and only
    /// "internal error" to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::Internal(cause.to_string())
    }
}

/// `text` as an email, or the field error that says why not.
pub fn parse_email(text: &str) -> Result<Email, Error> {
    text.parse().map_err(|e: model::ParseError| Error::field("email", e.reason))
}

/// Making an account's password or login: a short password is the
/// `password` field's fault, anything else is the store's or ours.
impl From<AuthError> for Error {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::PasswordPolicy => Self::field("password", e.to_string()),
            AuthError::InvalidCredentials => Self::InvalidCredentials,
            AuthError::Store(s) => s.into(),
            other => Self::internal(other),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken => Self::EmailTaken,
            StoreError::AlreadyQueued => Self::Conflict(Conflict::AlreadyQueued),
            StoreError::InviteUnusable => Self::SignupRefused(SignupRefusal::InviteUnusable),
            StoreError::InvalidCursor => Self::InvalidCursor,
            StoreError::InvalidPageLimit => Self::field("limit", "must be 1 to 500"),
            other => Self::internal(other),
        }
    }
}

impl From<AllocationError> for Error {
    fn from(e: AllocationError) -> Self {
        match e {
            AllocationError::Store(s) => s.into(),
            AllocationError::UserNotFound => Self::Unauthenticated,
            AllocationError::NotEntitled => Self::Forbidden(Denied::NotEntitled),
            other => Self::Allocation(other),
        }
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Unauthenticated => Self::Unauthenticated,
            Refusal::NotFound => Self::NotFound(Missing::SessionAtHost),
            Refusal::NotEntitled => Self::Forbidden(Denied::NotEntitled),
            Refusal::NotYours => Self::Forbidden(Denied::NotYourSession),
        }
    }
}
