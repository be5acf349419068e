// Time actually spent, from the `effort` reactor's queries: per thread
// (read through its saga's `by_saga`), re-read when a run ends. A running
// thread's current run is added live from its `started_at`.

import { query } from './api.js';
import { model } from './store.js';

/** Recorded ms per thread id, from the last `by_saga` answers. */
const recorded = new Map();
let available = true;

/** Whether the effort reactor answers here (the page says so when not). */
export function effortAvailable() { return available; }

/** Re-reads the recorded time of saga `id` (a missing record is no time yet). */
export async function refreshSaga(id) {
  try {
    const answer = await query('effort', 'by_saga', { id });
    for (const t of answer?.threads || []) recorded.set(t.id, t.ms);
    available = true;
  } catch (e) {
    // 404 for an unknown reactor, 503 without a host here: no effort data.
    if (e.status === 404 || e.status === 503) available = false;
    else throw e;
  }
}

/** Queries in flight at once when every saga is re-read. */
const AT_ONCE = 4;

/** Re-reads every saga's time (at load and reconnect), a few at a time. */
export async function refreshAll() {
  const queue = [...model.threads.values()].filter((t) => t.kind === 'saga').map((t) => t.id);
  const worker = async () => {
    while (queue.length) await refreshSaga(queue.shift()).catch(() => {});
  };
  await Promise.all(Array.from({ length: AT_ONCE }, worker));
}

/** Time spent on thread `t` so far, including its current run if it is running. */
export function spent(t) {
  let ms = recorded.get(t.id) || 0;
  if (t.state === 'running' && t.started_at) {
    ms += Math.max(0, Date.now() - Date.parse(t.started_at));
  }
  return ms;
}

/** Events after which the recorded time of the thread's saga changed. */
export const RUN_ENDS = new Set(['thread.parked', 'thread.blocked', 'thread.completed', 'thread.quantum.expired', 'thread.deleted']);
