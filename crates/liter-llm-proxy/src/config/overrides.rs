//! Values given outside the file (command-line flags and `LITER_LLM_MASTER_KEY`),
//! applied as data: each resolved value is computed from the file's value and the
//! override; the parsed file is never changed.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// The `--host`, `--port` and `--master-key` flags, and `LITER_LLM_MASTER_KEY` (the
/// default of `--master-key`). Each applies only when given; an empty master key
/// counts as not given.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `--master-key`.
    pub master_key: Option<SecretString>,
    /// `LITER_LLM_MASTER_KEY`, the default of `--master-key`: used when the flag is
    /// not given, and then it wins over the file's `master_key`.
    pub master_key_env: Option<SecretString>,
}

/// Where the master key in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterKeySource {
    /// `--master-key`; `overrides_file`: the file sets a different one.
    Flag { overrides_file: bool },
    /// `LITER_LLM_MASTER_KEY`; `overrides_file`: the file sets a different one.
    Env { overrides_file: bool },
    /// `[general] master_key`.
    File,
}

impl fmt::Display for MasterKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (from, overrides) = match self {
            MasterKeySource::Flag { overrides_file } => ("--master-key", *overrides_file),
            MasterKeySource::Env { overrides_file } => ("LITER_LLM_MASTER_KEY", *overrides_file),
            MasterKeySource::File => ("the file", false),
        };
        write!(f, "from {from}")?;
        if overrides {
            write!(f, " (overrides the file)")?;
        }
        Ok(())
    }
}

fn non_empty(s: &Option<SecretString>) -> Option<&SecretString> {
    s.as_ref().filter(|k| !k.expose_secret().is_empty())
}

impl Overrides {
    /// The bind address: `--host`, else the file's.
    pub fn host<'a>(&'a self, file: &'a str) -> &'a str {
        self.host.as_deref().unwrap_or(file)
    }

    /// The bind port: `--port`, else the file's.
    pub fn port(&self, file: u16) -> u16 {
        self.port.unwrap_or(file)
    }

    /// The master key and where it came from: `--master-key`, else
    /// `LITER_LLM_MASTER_KEY` (the flag's default), else the file's (`file`:
    /// non-empty, as interpolated).
    pub fn master_key(&self, file: Option<&str>) -> Option<(SecretString, MasterKeySource)> {
        // The usual `master_key = "${LITER_LLM_MASTER_KEY}"` reads the same value:
        // nothing is overridden then.
        let overrides = |k: &SecretString| file.is_some_and(|f| f != k.expose_secret());
        if let Some(k) = non_empty(&self.master_key) {
            let overrides_file = overrides(k);
            return Some((k.clone(), MasterKeySource::Flag { overrides_file }));
        }
        if let Some(k) = non_empty(&self.master_key_env) {
            let overrides_file = overrides(k);
            return Some((k.clone(), MasterKeySource::Env { overrides_file }));
        }
        file.map(|k| (SecretString::from(k), MasterKeySource::File))
    }
}
