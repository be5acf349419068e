// The gateway's HTTP API: the command catalog, commands and queries,
// each with the bearer token when there is one (`auth.js`).

import { withToken, refused } from './auth.js';

let sessionId = '';

/** Sets the session every command is sent in (its events reach our socket). */
export function useSession(id) { sessionId = id; }

/** What the last answer said went wrong, as one sentence. */
export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** The answer's JSON; a 401 or 403 is also passed to `auth.js`. */
async function json(res) {
  const text = await res.text();
  let body;
  try { body = text ? JSON.parse(text) : null; } catch { body = { error: text }; }
  refused(res.status, body?.error || `HTTP ${res.status}`);
  return body;
}

/** `GET /api`: `{commands: [...], queries: [...]}`. */
export async function catalog() {
  const res = await fetch('/api', { headers: withToken({ accept: 'application/json' }) });
  const body = await json(res);
  if (!res.ok) throw new ApiError(body?.error || `GET /api: ${res.status}`, res.status, body);
  return body;
}

/**
 * Sends command `key` with `body` in our session and waits up to `waitMs`
 * for its events. Resolves `{events, error}`: `error` is the first error
 * event's body (`{code, message, context}`), if any.
 */
export async function send(key, body, waitMs = 5000) {
  const path = `/api/${key.split('.').map(encodeURIComponent).join('/')}`;
  const q = new URLSearchParams({ wait: String(waitMs) });
  if (sessionId) q.set('session', sessionId);
  const res = await fetch(`${path}?${q}`, {
    method: 'POST',
    headers: withToken({ 'content-type': 'application/json' }),
    body: JSON.stringify(body ?? {}),
  });
  const answer = await json(res);
  if (!res.ok) {
    const message = answer?.error || answer?.message || `${key}: HTTP ${res.status}`;
    return { events: [], error: { code: `http_${res.status}`, message } };
  }
  const events = answer?.events || [];
  const failed = events.find((e) => e.meta?.routing_key?.endsWith('.error') || e.meta?.routing_key === 'error');
  return { events, error: failed ? failed.body : null };
}

/** `GET /api/query/<domain>/<name>?…`: resolves the answer, or null for `404` (nothing recorded). */
export async function query(domain, name, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const res = await fetch(`/api/query/${encodeURIComponent(domain)}/${encodeURIComponent(name)}?${q}`, { headers: withToken() });
  const body = await json(res);
  if (res.status === 404 && body?.code === 'not_found' && !/reactor|query/.test(body?.message || '')) return null;
  if (!res.ok) throw new ApiError(body?.message || body?.error || `${domain}.${name}: HTTP ${res.status}`, res.status, body);
  return body;
}
