//! The one error type services return. Each variant maps to a stable GraphQL code in `api`
//! (BAD_USER_INPUT, NOT_FOUND, CONFLICT, FORBIDDEN, INTERNAL).
//!
//! Messages name the field and the reason and never carry personal data or SQL: a database
//! error is kept as the `source` for the log and shown to callers only as "internal error".

use sea_orm::DbErr;

/// Result alias for domain services.
pub type DomainResult<T> = Result<T, DomainError>;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Input failed a rule; `field` is the input path (e.g. `input.municipality`).
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The thing asked for does not exist (or is outside the caller's scope and must not be
    /// revealed — services decide which, never the API).
    #[error("{what} {key} not found")]
    NotFound { what: &'static str, key: String },
    /// The request contradicts stored state (duplicate key, stale version, withdrawn site).
    #[error("{0}")]
    Conflict(String),
    /// The request cannot proceed until the caller fixes each listed problem (e.g. sites with
    /// boxes but no designated wholesaler block a confirmation). Shown as CONFLICT with the
    /// items listed, so nothing is silently dropped.
    #[error("{message}")]
    Blocked { message: String, items: Vec<BlockingItem> },
    /// The caller is authenticated but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// A rule about stored state refused the request, with a stable SCREAMING_SNAKE_CASE
    /// `reason` callers can act on (e.g. `INTERVAL_TOO_SHORT`). Shown as CONFLICT with
    /// `extensions.reason`.
    #[error("{message}")]
    Refused { reason: &'static str, message: String },
    /// Storage failed; details stay in the log.
    #[error("internal error")]
    Database(#[from] DbErr),
    /// Stored data violates an invariant the code relies on (a bug or a manual edit).
    #[error("internal error")]
    Corrupt(String),
}

/// One problem that blocks an operation: what it concerns, a stable reason code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingItem {
    /// The code of the thing concerned (e.g. a site code).
    pub subject: String,
    /// A stable SCREAMING_SNAKE_CASE reason, e.g. `NO_WHOLESALER`.
    pub reason: String,
    pub message: String,
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        DomainError::Invalid {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    pub fn not_found(what: &'static str, key: impl std::fmt::Display) -> Self {
        DomainError::NotFound {
            what,
            key: key.to_string(),
        }
    }
}

impl From<crate::authz::Denied> for DomainError {
    fn from(d: crate::authz::Denied) -> Self {
        DomainError::Forbidden(d.0)
    }
}
