// The page's view model: threads and sprints as the thread domain last
// described them, kept current from events alone. Every event body that
// is a thread carries its store `version`; an older one than held is
// ignored, so the same event arriving twice (the command's answer and the
// socket) or late changes nothing.

import { send } from './api.js';

/** Threads by id, sprints by id. */
export const model = {
  threads: new Map(),
  sprints: new Map(),
  /** Card error messages by thread id (the last refused command). */
  refusals: new Map(),
  archiveLoaded: false,
  loading: false,
};

const listeners = new Set();
/** When each thread was last changed by an event: a reload that started
 * earlier does not drop a thread created meanwhile. */
const touched = new Map();

/** `f(envelope | null)` after each change (null: a reload). */
export function subscribe(f) { listeners.add(f); return () => listeners.delete(f); }

function changed(env) { for (const f of listeners) f(env); }

const THREAD_EVENTS = new Set([
  'thread.saga.created', 'thread.story.created', 'thread.task.created', 'thread.updated',
  'thread.started', 'thread.parked', 'thread.blocked', 'thread.unblocked', 'thread.completed',
  'thread.archived', 'thread.quantum.expired', 'thread.sprint.story_added',
  'thread.sprint.story_removed', 'thread.got',
]);

/** Events whose body is a sprint. */
const SPRINT_EVENTS = new Set([
  'thread.sprint.created', 'thread.sprint.updated', 'thread.sprint.closing',
  'thread.sprint.closed', 'thread.sprint.reopened',
]);

function keepThread(t) {
  if (!t || typeof t.id !== 'string') return false;
  const held = model.threads.get(t.id);
  if (held && (held.version ?? 0) > (t.version ?? 0)) return false;
  model.threads.set(t.id, t);
  touched.set(t.id, performance.now());
  return true;
}

function keepSprint(s) {
  if (!s || typeof s.id !== 'string') return;
  const held = model.sprints.get(s.id);
  if (!held || (held.version ?? 0) <= (s.version ?? 0)) model.sprints.set(s.id, s);
}

/** Applies one event to the model; returns whether it was a thread-domain event. */
export function apply(env) {
  const key = env.meta.routing_key;
  const body = env.body;
  if (THREAD_EVENTS.has(key)) {
    if (keepThread(body)) model.refusals.delete(body.id);
  } else if (key === 'thread.deleted') {
    model.threads.delete(body?.id);
  } else if (key === 'thread.listed') {
    for (const t of body?.threads || []) keepThread(t);
  } else if (SPRINT_EVENTS.has(key)) {
    keepSprint(body);
  } else if (key === 'thread.sprint.listed') {
    for (const s of body?.sprints || []) keepSprint(s);
  } else if (key === 'thread.sprint.got') {
    keepSprint(body?.sprint);
    for (const t of body?.stories || []) keepThread(t);
  } else if (!key.startsWith('thread.')) {
    changed(env);
    return false;
  }
  changed(env);
  return true;
}

/** Reads every thread (paged, 500 at a time) matching `filter`. */
async function listAll(filter) {
  const out = [];
  let after;
  for (let page = 0; page < 200; page += 1) {
    const { events, error } = await send('thread.list', { ...filter, limit: 500, ...(after ? { after } : {}) }, 10000);
    if (error) throw new Error(error.message);
    const listed = events.find((e) => e.meta.routing_key === 'thread.listed')?.body;
    if (!listed) break;
    out.push(...listed.threads);
    if (!listed.more || !listed.next) break;
    after = listed.next;
  }
  return out;
}

/**
 * Reloads the model from the domain (at start, after a reconnect, after
 * a `pyou.gap`). Threads changed meanwhile by events keep the newer version.
 */
export async function reload() {
  model.loading = true;
  const started = performance.now();
  try {
    const [threads, sprints] = await Promise.all([
      listAll(model.archiveLoaded ? { archived: 'any' } : {}),
      send('thread.sprint.list', {}),
    ]);
    const seen = new Set(threads.map((t) => t.id));
    for (const id of [...model.threads.keys()]) if (!seen.has(id) && !(touched.get(id) > started)) model.threads.delete(id);
    for (const t of threads) keepThread(t);
    for (const s of sprints.events.find((e) => e.meta.routing_key === 'thread.sprint.listed')?.body?.sprints || []) keepSprint(s);
  } finally {
    model.loading = false;
  }
  changed(null);
}

/** Loads the archive too (the archive view asks for it). */
export async function loadArchive() {
  if (model.archiveLoaded) return;
  model.archiveLoaded = true;
  for (const t of await listAll({ archived: true })) keepThread(t);
  changed(null);
}

/**
 * Sends a command about thread `id` and applies its events; a refusal is
 * kept as the card's message. Resolves the error body or null.
 */
export async function act(command, id, extra = {}) {
  const { events, error } = await send(command, { id, ...extra });
  for (const e of events) apply(e);
  if (error) {
    model.refusals.set(id, error.message || error.code);
    changed(null);
  }
  return error;
}

/** Sends any thread-domain command and applies its events. */
export async function command(key, body) {
  const { events, error } = await send(key, body);
  for (const e of events) apply(e);
  return error;
}

/** Stories and tasks under saga `id`, by priority then id. */
export function childrenOf(id) {
  return [...model.threads.values()]
    .filter((t) => t.saga_id === id)
    .sort((a, b) => (b.priority - a.priority) || a.id.localeCompare(b.id));
}
