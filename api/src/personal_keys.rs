//! Where the personal-data keys come from (My Number encryption keys and the lookup-hash key,
//! see `domain::personal::crypto`).
//!
//! In order: `--personal-keys` + `--personal-lookup-key` (`VSYS_PERSONAL_KEYS`,
//! `VSYS_PERSONAL_LOOKUP_KEY`); else `--personal-key-file` (`VSYS_PERSONAL_KEY_FILE`); else, for
//! a SQLite file only, `<database file>.keys` beside it — generated on first start with mode
//! 0600 and announced in the log, so `cargo run -- serve` works with nothing configured while the
//! keys stay with the data they open. PostgreSQL (production) refuses to start without
//! configured keys: a key generated on one instance would make the others' data unreadable.
//!
//! Must not: print, log or put into an error any key material (errors name the setting only).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use domain::personal::crypto::PersonalKeys;
use rand::RngCore;

/// The configured sources; `Debug` never shows key material.
#[derive(Clone, Default)]
pub struct PersonalKeySettings {
    /// `id:base64[,id:base64…]`, 32-byte AES-256 keys; the first is current.
    pub encryption: Option<String>,
    /// base64 of a 32-byte HMAC key for My Number lookup hashes.
    pub lookup: Option<String>,
    /// A key file (`encryption=…` and `lookup=…` lines).
    pub key_file: Option<PathBuf>,
}

impl fmt::Debug for PersonalKeySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonalKeySettings")
            .field("encryption", &self.encryption.as_ref().map(|_| "<set>"))
            .field("lookup", &self.lookup.as_ref().map(|_| "<set>"))
            .field("key_file", &self.key_file)
            .finish()
    }
}

/// How the keys were found, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Configured,
    File(PathBuf),
    Generated(PathBuf),
    /// An in-memory SQLite database: keys live as long as the process (and the data).
    Ephemeral,
}

/// The SQLite file a database URL names, if it is one.
fn sqlite_file(database_url: &str) -> Option<Option<PathBuf>> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path == ":memory:" || rest.contains("mode=memory") {
        return Some(None);
    }
    Some(Some(PathBuf::from(path)))
}

fn parse_file(path: &Path) -> anyhow::Result<PersonalKeys> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the key file {}", path.display()))?;
    let (mut encryption, mut lookup) = (None, None);
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        match line.split_once('=') {
            Some(("encryption", v)) => encryption = Some(v.trim().to_owned()),
            Some(("lookup", v)) => lookup = Some(v.trim().to_owned()),
            _ => bail!(
                "the key file {} has a line that is not encryption=… or lookup=…",
                path.display()
            ),
        }
    }
    let (Some(e), Some(l)) = (encryption, lookup) else {
        bail!(
            "the key file {} needs an encryption= and a lookup= line",
            path.display()
        );
    };
    PersonalKeys::parse(&e, &l).with_context(|| format!("the key file {}", path.display()))
}

fn random_key() -> String {
    let mut k = [0u8; 32];
    rand::rng().fill_bytes(&mut k);
    B64.encode(k)
}

fn generate_file(path: &Path) -> anyhow::Result<()> {
    let text = format!(
        "# vsys personal-data keys (My Number encryption and lookup hash), generated for the SQLite\n\
         # database beside this file. Keep it with the database's backups but never inside them:\n\
         # without it the stored My Numbers cannot be read. To rotate, put a new key first:\n\
         # encryption=k2:<base64>,k1:<old base64> (then `vsys persons rekey`).\n\
         encryption=k1:{}\nlookup={}\n",
        random_key(),
        random_key()
    );
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create the key file {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

impl PersonalKeySettings {
    /// Explicit keys (tests, production).
    pub fn explicit(encryption: impl Into<String>, lookup: impl Into<String>) -> Self {
        PersonalKeySettings {
            encryption: Some(encryption.into()),
            lookup: Some(lookup.into()),
            key_file: None,
        }
    }

    /// Loads (or, for a SQLite file without configured keys, generates) the keys.
    pub fn load(&self, database_url: &str) -> anyhow::Result<(PersonalKeys, KeySource)> {
        match (&self.encryption, &self.lookup) {
            (Some(e), Some(l)) => {
                return Ok((
                    PersonalKeys::parse(e, l).context("VSYS_PERSONAL_KEYS / VSYS_PERSONAL_LOOKUP_KEY")?,
                    KeySource::Configured,
                ));
            }
            (Some(_), None) | (None, Some(_)) => {
                bail!("set both VSYS_PERSONAL_KEYS and VSYS_PERSONAL_LOOKUP_KEY (or neither and use a key file)")
            }
            (None, None) => {}
        }
        if let Some(path) = &self.key_file {
            return Ok((parse_file(path)?, KeySource::File(path.clone())));
        }
        match sqlite_file(database_url) {
            None => bail!(
                "personal-data keys are not configured: with PostgreSQL set VSYS_PERSONAL_KEYS (id:base64 of 32 \
                 bytes, comma-separated, current first) and VSYS_PERSONAL_LOOKUP_KEY (base64 of 32 bytes), or \
                 --personal-key-file; refusing to start without them"
            ),
            Some(None) => Ok((
                PersonalKeys::parse(&format!("mem:{}", random_key()), &random_key())?,
                KeySource::Ephemeral,
            )),
            Some(Some(db)) => {
                let mut name = db.clone().into_os_string();
                name.push(".keys");
                let path = PathBuf::from(name);
                if path.exists() {
                    Ok((parse_file(&path)?, KeySource::File(path)))
                } else {
                    generate_file(&path)?;
                    Ok((parse_file(&path)?, KeySource::Generated(path)))
                }
            }
        }
    }
}

/// Loads the keys and says where they came from in the log (never what they are).
pub fn load_and_announce(settings: &PersonalKeySettings, database_url: &str) -> anyhow::Result<PersonalKeys> {
    let (keys, source) = settings.load(database_url)?;
    match &source {
        KeySource::Configured => tracing::info!(current = keys.current_key_id(), "personal-data keys: configured"),
        KeySource::File(p) => {
            tracing::info!(file = %p.display(), current = keys.current_key_id(), "personal-data keys: from key file")
        }
        KeySource::Generated(p) => tracing::warn!(
            file = %p.display(),
            "personal-data keys: none configured, so a development key file was generated beside the SQLite \
             database (mode 0600); keep it with the database, and configure real keys for production"
        ),
        KeySource::Ephemeral => {
            tracing::warn!("personal-data keys: in-memory database, so keys were generated for this process only")
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_file("sqlite://vsys.db?mode=rwc"),
            Some(Some(PathBuf::from("vsys.db")))
        );
        assert_eq!(sqlite_file("sqlite:/tmp/x.db"), Some(Some(PathBuf::from("/tmp/x.db"))));
        assert_eq!(sqlite_file("sqlite::memory:"), Some(None));
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }

    #[test]
    fn postgres_without_keys_refuses_and_debug_hides_keys() {
        let e = PersonalKeySettings::default()
            .load("postgres://postgres@127.0.0.1/x")
            .expect_err("must refuse");
        assert!(e.to_string().contains("refusing to start"), "{e}");
        let s = PersonalKeySettings::explicit(format!("k1:{}", random_key()), random_key());
        let debug = format!("{s:?}");
        assert!(!debug.contains(s.lookup.as_deref().unwrap_or("-")), "{debug}");
        assert!(s.load("postgres://x").is_ok());
        let half = PersonalKeySettings { lookup: None, ..s };
        assert!(half.load("postgres://x").is_err());
    }

    #[test]
    fn a_sqlite_file_gets_a_private_key_file_once() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("v.db").display());
        let (_, first) = PersonalKeySettings::default().load(&url).expect("generated");
        let path = dir.path().join("v.db.keys");
        assert_eq!(first, KeySource::Generated(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let (_, second) = PersonalKeySettings::default().load(&url).expect("read back");
        assert_eq!(second, KeySource::File(path));
    }
}
