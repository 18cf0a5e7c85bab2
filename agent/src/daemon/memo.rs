//! Answers shared between the virtual agents of one fleet simulator process
//! (`sweep-agent fleet`): they all run on one machine, so a query's answer is
//! the same for each, and running it once per virtual host would measure the
//! machine's CPU, not sweep. As Velociraptor's `pool_client` does, the first
//! agent to ask runs the query; the others within `ttl` get its answer and
//! send it under their own host id. Every figure the simulator reports says
//! its answers are memoised.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::engine::QueryOutput;
use crate::error::AgentError;

pub struct Memo {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    runs: AtomicU64,
    shared: AtomicU64,
}

struct Entry {
    made: Instant,
    answer: Arc<OnceCell<Arc<QueryOutput>>>,
    asked: Arc<Asked>,
}

/// When agents asked for one query: how fast a hunt fanned out.
#[derive(Default)]
pub struct Asked {
    /// Unix milliseconds of the first and the latest ask.
    pub first_ms: AtomicU64,
    pub last_ms: AtomicU64,
    pub asks: AtomicU64,
}

impl Memo {
    /// Answers are reused for `ttl` after the query first ran.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            runs: AtomicU64::new(0),
            shared: AtomicU64::new(0),
        }
    }

    /// The answer to `sql`: from the agent that ran it within `ttl`, or from
    /// `run` (once, however many agents ask at the same moment).
    pub async fn answer<F, Fut>(&self, sql: &str, run: F) -> Result<Arc<QueryOutput>, AgentError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<QueryOutput, AgentError>>,
    {
        let cell = {
            let mut entries = self
                .entries
                .lock()
                .expect("the memo lock is never poisoned");
            let now = Instant::now();
            entries.retain(|_, e| now.duration_since(e.made) < self.ttl);
            let entry = entries.entry(sql.to_string()).or_insert_with(|| Entry {
                made: now,
                answer: Arc::new(OnceCell::new()),
                asked: Arc::default(),
            });
            let ms = sweep_proto::time::unix_now_ms();
            let _ =
                entry
                    .asked
                    .first_ms
                    .compare_exchange(0, ms, Ordering::Relaxed, Ordering::Relaxed);
            entry.asked.last_ms.fetch_max(ms, Ordering::Relaxed);
            entry.asked.asks.fetch_add(1, Ordering::Relaxed);
            entry.answer.clone()
        };
        let mut ran = false;
        let answer = cell
            .get_or_try_init(|| async {
                ran = true;
                run().await.map(Arc::new)
            })
            .await?
            .clone();
        if ran {
            self.runs.fetch_add(1, Ordering::Relaxed);
        } else {
            self.shared.fetch_add(1, Ordering::Relaxed);
        }
        Ok(answer)
    }

    /// The queries asked within the ttl: SQL, asks, first and last ask
    /// (unix ms).
    pub fn recent(&self) -> Vec<(String, u64, u64, u64)> {
        let entries = self
            .entries
            .lock()
            .expect("the memo lock is never poisoned");
        entries
            .iter()
            .map(|(sql, e)| {
                (
                    sql.clone(),
                    e.asked.asks.load(Ordering::Relaxed),
                    e.asked.first_ms.load(Ordering::Relaxed),
                    e.asked.last_ms.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Queries run, and answers handed on without running.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.runs.load(Ordering::Relaxed),
            self.shared.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_query_runs_once_for_every_agent_asking_within_the_ttl() {
        let memo = Arc::new(Memo::new(Duration::from_secs(60)));
        let mut asks = Vec::new();
        for _ in 0..50 {
            let memo = memo.clone();
            asks.push(tokio::spawn(async move {
                memo.answer("SELECT 1", || async {
                    tokio::task::yield_now().await;
                    Ok(QueryOutput {
                        row_count: 1,
                        ..QueryOutput::default()
                    })
                })
                .await
                .unwrap()
                .row_count
            }));
        }
        for a in asks {
            assert_eq!(a.await.unwrap(), 1);
        }
        assert_eq!(memo.counts(), (1, 49));
        // Another query runs on its own.
        memo.answer("SELECT 2", || async { Ok(QueryOutput::default()) })
            .await
            .unwrap();
        assert_eq!(memo.counts(), (2, 49));
    }
}
