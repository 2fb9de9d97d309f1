//! Maps every failure to a GraphQL error with a stable `extensions.code`. Internal errors are
//! logged with their cause and shown to callers only as "internal error"; SQL, stack traces and
//! personal data never leave the server.

use async_graphql::{ErrorExtensions, ServerError};
use domain::DomainError;

/// The stable codes callers can rely on.
pub mod code {
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const CONFLICT: &str = "CONFLICT";
    pub const INTERNAL: &str = "INTERNAL";
    /// HTTP 429 for anonymous traffic over its rate (see `public::limit`); not a GraphQL
    /// execution error: the request was refused before GraphQL ran.
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
}

/// An error with its code, built where the code is known.
pub fn coded(message: impl Into<String>, code: &'static str) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code))
}

pub fn unauthenticated(message: impl Into<String>) -> async_graphql::Error {
    coded(message, code::UNAUTHENTICATED)
}

/// A subscription item telling the subscriber it may have missed changes and should refetch:
/// CONFLICT, with `extensions.missed` = the number of changes skipped (0 when unknown, after an
/// interrupted link between instances). The subscription goes on.
pub fn missed(m: crate::events::Missed) -> async_graphql::Error {
    let n = match m {
        crate::events::Missed::Lagged(n) => n,
        crate::events::Missed::Interrupted => 0,
    };
    async_graphql::Error::new(m.to_string()).extend_with(move |_, e| {
        e.set("code", code::CONFLICT);
        e.set("missed", n);
    })
}

/// The GraphQL form of a domain error.
pub fn from_domain(e: DomainError) -> async_graphql::Error {
    match &e {
        DomainError::Invalid { field, .. } => {
            // The input path (e.g. `input.lots[1].expiryDate`) also as data, for clients that
            // highlight the offending field.
            let field = field.clone();
            coded(e.to_string(), code::BAD_USER_INPUT).extend_with(move |_, x| x.set("field", field.as_str()))
        }
        DomainError::NotFound { .. } => coded(e.to_string(), code::NOT_FOUND),
        DomainError::Conflict(_) => coded(e.to_string(), code::CONFLICT),
        DomainError::Forbidden(_) => coded(e.to_string(), code::FORBIDDEN),
        DomainError::Refused { reason, .. } => {
            let reason = *reason;
            coded(e.to_string(), code::CONFLICT).extend_with(move |_, x| x.set("reason", reason))
        }
        DomainError::Blocked { items, .. } => {
            let list = serde_json::Value::Array(
                items
                    .iter()
                    .map(|i| serde_json::json!({ "subject": i.subject, "reason": i.reason, "message": i.message }))
                    .collect(),
            );
            let blocking = async_graphql::Value::from_json(list).unwrap_or_default();
            async_graphql::Error::new(e.to_string()).extend_with(|_, x| {
                x.set("code", code::CONFLICT);
                x.set("blocking", blocking.clone());
            })
        }
        DomainError::Database(cause) => {
            tracing::error!(error = %cause, "database error");
            coded("internal error", code::INTERNAL)
        }
        DomainError::Corrupt(what) => {
            tracing::error!(error = %what, "stored data violates an invariant");
            coded("internal error", code::INTERNAL)
        }
    }
}

/// Resolvers return `Result<T, Error>` via `?` on domain calls.
pub trait IntoGql<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> IntoGql<T> for Result<T, DomainError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(from_domain)
    }
}

/// Errors raised by async-graphql itself (syntax, validation, a scalar that failed to parse)
/// carry no code; they are all the caller's input, so they get BAD_USER_INPUT. Anything else
/// without a code is a bug and gets INTERNAL.
pub fn ensure_code(err: &mut ServerError) {
    let has_code = err.extensions.as_ref().is_some_and(|e| e.get("code").is_some());
    if !has_code {
        let c = if err.source.is_none() {
            code::BAD_USER_INPUT
        } else {
            code::INTERNAL
        };
        err.extensions.get_or_insert_with(Default::default).set("code", c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(e: async_graphql::Error) -> String {
        let ext = e.extensions.expect("extensions");
        match ext.get("code") {
            Some(async_graphql::Value::String(s)) => s.clone(),
            other => panic!("no code: {other:?}"),
        }
    }

    #[test]
    fn each_domain_error_has_its_code() {
        let cases = [
            (
                DomainError::invalid("input.name", "must not be empty"),
                code::BAD_USER_INPUT,
                "input.name: must not be empty",
            ),
            (
                DomainError::not_found("site", "0110113719"),
                code::NOT_FOUND,
                "site 0110113719 not found",
            ),
            (DomainError::Conflict("dup".into()), code::CONFLICT, "dup"),
            (DomainError::Forbidden("no".into()), code::FORBIDDEN, "no"),
            (
                DomainError::Refused {
                    reason: "DUPLICATE_DOSE",
                    message: "dose 1 is already recorded".into(),
                },
                code::CONFLICT,
                "dose 1 is already recorded",
            ),
            (
                DomainError::Blocked {
                    message: "blocked".into(),
                    items: vec![domain::error::BlockingItem {
                        subject: "1312020017".into(),
                        reason: "NO_WHOLESALER".into(),
                        message: "x".into(),
                    }],
                },
                code::CONFLICT,
                "blocked",
            ),
            (
                DomainError::Database(sea_orm::DbErr::Custom("SELECT secret".into())),
                code::INTERNAL,
                "internal error",
            ),
            (DomainError::Corrupt("row".into()), code::INTERNAL, "internal error"),
        ];
        for (e, want, message) in cases {
            let g = from_domain(e);
            assert_eq!(g.message, message);
            assert_eq!(code_of(g), want);
        }
    }
}
