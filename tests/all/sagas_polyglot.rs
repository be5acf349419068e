//! Sagas written in Python (`sdk/python/parallel_you_saga.py`) end to end
//! on the in-process bus: `handlers/testing/pytrip`, the twin of the Rust
//! `trip` over the same `ledger` test handler, built by
//! `scripts/build-polyglot`, goes through the scenarios of
//! `tests/all/sagas.rs` and ends each in the same documented state with
//! the same event trail: a completed run, a refused step undone last
//! first, a silent step retried then timed out, and a stuck compensation
//! listed, shown and resumed with `pyou sagas`, from the same query
//! answers as the Rust saga's.

use crate::common;
use crate::sagas;

use std::sync::Arc;
use std::time::Duration;

use common::OnBus;
use parallel_you_core::MemoryStore;

const SAGA: &str = "pytrip";

/// `ledger` and `pytrip` on a fresh bus, or why the component is missing.
async fn serve() -> OnBus {
    let file = common::components().join(format!("{SAGA}.wasm"));
    assert!(
        file.exists(),
        "{} was not built: scripts/build-polyglot needs python3 (with venv or pip); see its \
         messages above",
        file.display()
    );
    sagas::serve_saga(SAGA, Arc::new(MemoryStore::new())).await
}

#[tokio::test]
async fn a_python_saga_runs_its_three_steps_and_says_so_on_the_session() {
    let on = serve().await;
    sagas::runs_three_steps(&on, SAGA).await;
    on.serving.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_failed_python_step_undoes_the_completed_ones_last_first() {
    let on = serve().await;
    sagas::undoes_a_failed_step_last_first(&on, SAGA).await;
    on.serving.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_python_step_that_never_answers_is_tried_again_then_times_out_and_is_undone() {
    let on = serve().await;
    sagas::times_out_a_silent_step(&on, SAGA).await;
    on.serving.shutdown(Duration::from_secs(5)).await;
}

#[test]
fn pyou_sagas_lists_shows_and_retries_a_python_saga() {
    assert!(common::components().join(format!("{SAGA}.wasm")).exists());
    sagas::pyou_sagas_list_show_and_retry(SAGA);
}
