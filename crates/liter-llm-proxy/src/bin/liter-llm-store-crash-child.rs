//! Test support, not a product binary: a stand-in gateway process for the store's
//! crash test (`tests/store.rs`, `killed_gateway_is_reconciled`). It reserves five
//! amounts of $2 against `key:crash` in the store at `argv[1]`, settles two of them at
//! $1.50, waits until that is durable, prints `CRASH-CHILD-READY` and waits to be killed with SIGKILL.
//! Further arguments: `no-ledger` settles without ledger rows (`disable_spend_logs`);
//! `interval=SECS` sets the spend write interval (`spend_write_interval_secs`) and does
//! not flush: it prints `CRASH-CHILD-READY` once a second and a half has passed (longer
//! than the default interval, so without the setting its rows would be committed), with
//! the two settled rows still waiting in memory.

use std::time::Duration;

use liter_llm_proxy::store::{self, BudgetScope, LedgerEntry, Reservation};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: liter-llm-store-crash-child STORE_URL")?;
    let s = store::open(&url).await?;
    let mut interval = None;
    for arg in std::env::args().skip(2) {
        if arg == "no-ledger" {
            s.spend.set_ledger_rows(false)?;
        } else if let Some(secs) = arg.strip_prefix("interval=") {
            let secs: u64 = secs.parse()?;
            s.spend.set_write_interval(Duration::from_secs(secs));
            interval = Some(secs);
        } else {
            return Err(format!("unknown argument {arg:?}").into());
        }
    }
    for i in 0..5 {
        let id = s
            .spend
            .reserve(Reservation {
                request_id: format!("c{i}"),
                scopes: vec![BudgetScope::named("key:crash", 100.0, None)],
                amount_usd: 2.0,
            })
            .await
            .map_err(|e| format!("reserve: {e:?}"))?;
        if i < 2 {
            let at = 1_700_000_000_000;
            s.spend
                .settle(
                    id,
                    LedgerEntry {
                        request_id: format!("c{i}"),
                        key_id: Some("crash".to_owned()),
                        key_alias: Some("alias-crash".to_owned()),
                        model: "m".to_owned(),
                        deployment: "m-east".to_owned(),
                        prompt_tokens: 100,
                        completion_tokens: 20,
                        cached_tokens: 10,
                        cost_usd: 1.5,
                        status: 200,
                        cache_hit: false,
                        started_at: at,
                        ended_at: at + 1_500,
                    },
                )
                .await?;
        }
    }
    if interval.is_some() {
        // Past the default interval; the long one keeps the settled rows in memory.
        tokio::time::sleep(store::DEFAULT_WRITE_INTERVAL + Duration::from_millis(500)).await;
    } else {
        // Settled rows are committed in the background; wait for them (what is settled
        // but not yet committed at a crash is counted in full instead).
        s.spend.flush().await?;
    }
    println!("CRASH-CHILD-READY");
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(())
}
