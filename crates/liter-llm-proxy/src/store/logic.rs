//! The arithmetic both backends share, kept apart from SQL so it reads (and is tested)
//! on its own: money in integer nano-dollars, the per-scope window roll-over and limit
//! check, input validation, and the flat column form of keys.
//!
//! Money is `i64` nano-USD in the database: an `f64` amount is rounded to the nearest
//! nano-dollar once, at the edge, and every sum and comparison after that is exact, so
//! 200 concurrent reservations of $0.1 against $5 admit exactly 50 whatever the order.

use super::clock::{Period, UnixMillis};
use super::types::{
    KeyUpdate, LedgerEntry, NewKey, Reservation, ReserveError, ScopeSpend, StoreError, StoredKey,
    UniqueField,
};

const NANOS_PER_USD: f64 = 1e9;

/// An amount or cost in USD to nano-USD; must be finite and `>= 0`.
pub(crate) fn amount_nanos(usd: f64, what: &str) -> Result<i64, StoreError> {
    if !usd.is_finite() || usd < 0.0 {
        return Err(StoreError::InvalidInput(format!(
            "{what} must be a finite amount >= 0, got {usd}"
        )));
    }
    let n = (usd * NANOS_PER_USD).round();
    if n >= i64::MAX as f64 {
        return Err(StoreError::InvalidInput(format!("{what} is too large")));
    }
    // In range and integral: the cast is exact.
    Ok(n as i64)
}

/// A limit in USD to nano-USD; `>= 0`, and anything past the `i64` range (including
/// `f64::INFINITY`) means no limit.
pub(crate) fn limit_nanos(usd: f64) -> Result<i64, StoreError> {
    if usd.is_nan() || usd < 0.0 {
        return Err(StoreError::InvalidInput(format!(
            "a budget limit must be >= 0, got {usd}"
        )));
    }
    let n = (usd * NANOS_PER_USD).round();
    Ok(if n >= i64::MAX as f64 {
        i64::MAX
    } else {
        n as i64
    })
}

/// Nano-USD to USD.
pub(crate) fn usd(nanos: i64) -> f64 {
    nanos as f64 / NANOS_PER_USD
}

/// A limit back to USD (`i64::MAX` is "no limit": infinity).
pub(crate) fn limit_usd(nanos: i64) -> f64 {
    if nanos == i64::MAX {
        f64::INFINITY
    } else {
        usd(nanos)
    }
}

/// A token count for a `BIGINT` column.
pub(crate) fn tokens_col(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A `BIGINT` column back to a count (negative never written; read as 0).
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// One scope of a validated reservation.
#[derive(Debug, Clone)]
pub(crate) struct ScopeLimit {
    pub name: std::sync::Arc<str>,
    pub limit: i64,
    pub period: Option<Period>,
}

impl AsRef<str> for ScopeLimit {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

/// A reservation checked and in lock order: scopes sorted by name (every backend locks
/// scope rows in this order, so two transactions never wait on each other in a cycle).
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub amount: i64,
    pub scopes: Vec<ScopeLimit>,
}

impl Prepared {
    pub(crate) fn new(r: &Reservation) -> Result<Self, StoreError> {
        let amount = amount_nanos(r.amount_usd, "a reservation amount")?;
        let mut scopes = Vec::with_capacity(r.scopes.len());
        for s in &r.scopes {
            scopes.push(ScopeLimit {
                name: s.scope.clone(),
                limit: limit_nanos(s.limit_usd)?,
                period: s.period,
            });
        }
        scopes.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = scopes.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(StoreError::InvalidInput(format!(
                "scope {:?} appears twice in one reservation",
                w[0].name
            )));
        }
        Ok(Self { amount, scopes })
    }

    /// The scope names as stored on the reservation row.
    pub(crate) fn names_json(&self) -> Result<String, StoreError> {
        let names: Vec<&str> = self.scopes.iter().map(|s| &*s.name).collect();
        serde_json::to_string(&names).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

/// Scope names from a reservation row, sorted (lock order).
pub(crate) fn parse_names(json: &str) -> Result<Vec<String>, StoreError> {
    let mut names: Vec<String> =
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    names.sort();
    names.dedup();
    Ok(names)
}

/// A row of `budget_scopes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScopeRow {
    pub spent: i64,
    pub reserved: i64,
    pub limit: i64,
    pub period: Option<Period>,
    pub period_start: Option<UnixMillis>,
}

impl ScopeRow {
    /// A scope never seen before.
    pub(crate) fn fresh(limit: i64) -> Self {
        Self {
            spent: 0,
            reserved: 0,
            limit,
            period: None,
            period_start: None,
        }
    }

    /// Decodes the stored period text.
    pub(crate) fn period_from(text: Option<String>) -> Result<Option<Period>, StoreError> {
        text.map(|t| t.parse().map_err(|e| StoreError::Corrupt(format!("{e}"))))
            .transpose()
    }

    /// The row as of `now` under `period` (the reservation's, or the stored one): when
    /// the window that contains `now` is a later one, spend starts again from zero.
    /// Reservations carry over: they are still in flight and settle into the new window.
    /// A scope that gains a period starts its first window now, keeping its spend.
    pub(crate) fn rolled(mut self, period: Option<Period>, now: UnixMillis) -> Self {
        match period {
            None => {
                self.period = None;
                self.period_start = None;
            }
            Some(p) => {
                let start = match (self.period, self.period_start) {
                    (Some(_), Some(s)) => s,
                    _ => now,
                };
                let window = p.window_start(start, now);
                if window != start {
                    self.spent = 0;
                }
                self.period = Some(p);
                self.period_start = Some(window);
            }
        }
        self
    }

    /// The row rolled under its own stored period.
    pub(crate) fn rolled_own(self, now: UnixMillis) -> Self {
        let p = self.period;
        self.rolled(p, now)
    }

    /// `Ok` when `amount` more fits under `limit`; else what is left (never negative).
    pub(crate) fn check(&self, amount: i64, limit: i64) -> Result<(), i64> {
        let used = i128::from(self.spent) + i128::from(self.reserved);
        if used + i128::from(amount) <= i128::from(limit) {
            Ok(())
        } else {
            let left = (i128::from(limit) - used).max(0);
            Err(i64::try_from(left).unwrap_or(i64::MAX))
        }
    }

    /// The row with `amount` more held in scope `s` as of `now` (window rolled, the
    /// reservation's limit stored), or the refusal naming `s` when it does not fit.
    pub(crate) fn hold(
        self,
        s: &ScopeLimit,
        amount: i64,
        now: UnixMillis,
    ) -> Result<Self, ReserveError> {
        let mut row = self.rolled(s.period, now);
        row.limit = s.limit;
        if let Err(left) = row.check(amount, s.limit) {
            return Err(ReserveError::OverBudget {
                scope: s.name.to_string(),
                limit_usd: limit_usd(s.limit),
                remaining_usd: usd(left),
            });
        }
        row.reserved = row.reserved.saturating_add(amount);
        Ok(row)
    }

    /// What [`super::SpendStore::spent`] reports for scope `name` with this row (`None`:
    /// never seen), as of `now`.
    pub(crate) fn spend(row: Option<Self>, name: &str, now: UnixMillis) -> ScopeSpend {
        match row.map(|r| r.rolled_own(now)) {
            None => ScopeSpend {
                scope: name.to_owned(),
                spent_usd: 0.0,
                reserved_usd: 0.0,
                limit_usd: None,
                period: None,
                period_start: None,
            },
            Some(row) => ScopeSpend {
                scope: name.to_owned(),
                spent_usd: usd(row.spent),
                reserved_usd: usd(row.reserved),
                limit_usd: Some(limit_usd(row.limit)),
                period: row.period,
                period_start: row.period_start,
            },
        }
    }

    /// Releases `reserved` and adds `cost` (the provider's bill is recorded even past
    /// the limit).
    pub(crate) fn settle(&mut self, reserved: i64, cost: i64) {
        self.reserved = self.reserved.saturating_sub(reserved).max(0);
        self.spent = self.spent.saturating_add(cost);
    }
}

/// Extracts `<rest>` from a scope name `<prefix><rest>`.
pub(crate) fn scope_part<'a>(names: &'a [String], prefix: &str) -> Option<&'a str> {
    names.iter().find_map(|n| n.strip_prefix(prefix))
}

/// The ledger row of a reservation a dead gateway left: counted in full, status 0.
pub(crate) fn orphan_entry(
    request_id: String,
    names: &[String],
    amount: i64,
    started_at: i64,
    now: i64,
) -> LedgerEntry {
    LedgerEntry {
        request_id,
        key_id: scope_part(names, "key:").map(str::to_owned),
        key_alias: None,
        model: scope_part(names, "model:").unwrap_or_default().to_owned(),
        deployment: String::new(),
        prompt_tokens: 0,
        completion_tokens: 0,
        cached_tokens: 0,
        cost_usd: usd(amount),
        status: 0,
        cache_hit: false,
        started_at,
        ended_at: now,
    }
}

/// Checks and lower-cases a SHA-256 hex digest.
pub(crate) fn key_hash(hash: &str) -> Result<String, StoreError> {
    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hash.to_ascii_lowercase())
    } else {
        Err(StoreError::InvalidInput(
            "key_hash must be the SHA-256 of the key as 64 hex digits".to_owned(),
        ))
    }
}

/// A fresh key id: 128 random bits as 32 hex digits.
pub(crate) fn new_key_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Maps a unique violation on the keys table to [`StoreError::Conflict`].
pub(crate) fn key_write_error(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            let name = db.constraint().unwrap_or_else(|| db.message());
            let field = if name.contains("alias") {
                UniqueField::KeyAlias
            } else {
                UniqueField::KeyHash
            };
            return StoreError::Conflict(field);
        }
    }
    StoreError::Database(e)
}

/// A key in column form: what both backends read and write.
#[derive(Debug, Clone)]
pub(crate) struct KeyColumns {
    pub id: String,
    pub key_hash: String,
    pub key_alias: Option<String>,
    pub models: String,
    pub max_budget: Option<f64>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub budget_duration: Option<String>,
    pub expires_at: Option<i64>,
    pub metadata: String,
    pub created_at: i64,
    pub blocked: bool,
    /// JSON array.
    pub tags: String,
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl KeyColumns {
    pub(crate) fn from_key(k: &StoredKey) -> Result<Self, StoreError> {
        if let Some(b) = k.max_budget {
            limit_nanos(b)?;
        }
        Ok(Self {
            id: k.id.clone(),
            key_hash: key_hash(&k.key_hash)?,
            key_alias: k.key_alias.clone(),
            models: serde_json::to_string(&k.models).map_err(json_err)?,
            max_budget: k.max_budget,
            rpm_limit: k.rpm_limit.map(tokens_col),
            tpm_limit: k.tpm_limit.map(tokens_col),
            budget_duration: k.budget_duration.map(|p| p.to_string()),
            expires_at: k.expires_at,
            metadata: serde_json::to_string(&k.metadata).map_err(json_err)?,
            created_at: k.created_at,
            blocked: k.blocked,
            tags: serde_json::to_string(&k.tags).map_err(json_err)?,
        })
    }

    pub(crate) fn into_key(self) -> Result<StoredKey, StoreError> {
        Ok(StoredKey {
            id: self.id,
            key_hash: self.key_hash,
            key_alias: self.key_alias,
            models: serde_json::from_str(&self.models).map_err(json_err)?,
            max_budget: self.max_budget,
            rpm_limit: self.rpm_limit.map(count),
            tpm_limit: self.tpm_limit.map(count),
            budget_duration: ScopeRow::period_from(self.budget_duration)?,
            expires_at: self.expires_at,
            metadata: serde_json::from_str(&self.metadata).map_err(json_err)?,
            created_at: self.created_at,
            blocked: self.blocked,
            tags: serde_json::from_str(&self.tags).map_err(json_err)?,
        })
    }
}

/// The key a [`NewKey`] describes, with a fresh id.
pub(crate) fn new_key(k: NewKey, now: UnixMillis) -> StoredKey {
    StoredKey {
        id: new_key_id(),
        key_hash: k.key_hash,
        key_alias: k.key_alias,
        models: k.models,
        max_budget: k.max_budget,
        rpm_limit: k.rpm_limit,
        tpm_limit: k.tpm_limit,
        budget_duration: k.budget_duration,
        expires_at: k.expires_at,
        metadata: k.metadata,
        created_at: now,
        blocked: k.blocked,
        tags: k.tags,
    }
}

/// `key` with `u` applied.
pub(crate) fn apply_update(mut key: StoredKey, u: KeyUpdate) -> StoredKey {
    if let Some(v) = u.key_hash {
        key.key_hash = v;
    }
    if let Some(v) = u.key_alias {
        key.key_alias = v;
    }
    if let Some(v) = u.models {
        key.models = v;
    }
    if let Some(v) = u.max_budget {
        key.max_budget = v;
    }
    if let Some(v) = u.rpm_limit {
        key.rpm_limit = v;
    }
    if let Some(v) = u.tpm_limit {
        key.tpm_limit = v;
    }
    if let Some(v) = u.budget_duration {
        key.budget_duration = v;
    }
    if let Some(v) = u.expires_at {
        key.expires_at = v;
    }
    if let Some(v) = u.metadata {
        key.metadata = v;
    }
    if let Some(v) = u.blocked {
        key.blocked = v;
    }
    if let Some(v) = u.tags {
        key.tags = v;
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::types::BudgetScope;

    #[test]
    fn money_round_trips_exactly() {
        assert_eq!(amount_nanos(0.1, "x").unwrap(), 100_000_000);
        assert_eq!(amount_nanos(1.5e-7, "x").unwrap(), 150);
        assert!(amount_nanos(-1.0, "x").is_err());
        assert!(amount_nanos(f64::NAN, "x").is_err());
        assert_eq!(limit_nanos(f64::INFINITY).unwrap(), i64::MAX);
        assert_eq!(limit_usd(i64::MAX), f64::INFINITY);
        let fifty: i64 = (0..500).map(|_| amount_nanos(0.1, "x").unwrap()).sum();
        assert_eq!(fifty, limit_nanos(50.0).unwrap());
    }

    #[test]
    fn prepare_sorts_and_rejects_duplicates() {
        let r = Reservation {
            request_id: "r".into(),
            scopes: vec![
                BudgetScope::model("m", 1.0, None),
                BudgetScope::global(2.0, None),
            ],
            amount_usd: 0.5,
        };
        let p = Prepared::new(&r).unwrap();
        assert_eq!(&*p.scopes[0].name, "global");
        let mut dup = r.clone();
        dup.scopes.push(BudgetScope::global(3.0, None));
        assert!(Prepared::new(&dup).is_err());
    }

    #[test]
    fn check_and_roll() {
        let day = Period::days(1).unwrap();
        let mut row = ScopeRow::fresh(10).rolled(Some(day), 100);
        assert_eq!(row.period_start, Some(100));
        row.spent = 6;
        row.reserved = 3;
        assert_eq!(row.check(1, 10), Ok(()));
        assert_eq!(row.check(2, 10), Err(1));
        let later = row.clone().rolled_own(100 + 86_400_000);
        assert_eq!((later.spent, later.reserved), (0, 3));
        assert_eq!(later.period_start, Some(100 + 86_400_000));
    }
}
