//! Personal data of the vaccination records (VRS): residents, their protected identifiers,
//! and who may read them.
//!
//! Owns: the protection of My Number at rest ([`crypto`]) and the person's vocabulary and pure
//! field rules ([`person`]). Must not: put names, addresses or My Number into logs, errors or
//! metrics — the types here redact themselves in `Debug`.

pub mod crypto;
pub mod person;
