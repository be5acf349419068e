// The session's WebSocket: reconnects with backoff, resumes the session
// (the gateway replays what it buffered while we were away), and follows
// every thread and handler event so a shared view stays in sync. Each
// tab remembers the last event of its session it was given (`after`), so
// a gateway that restarted meanwhile can replay the rest from the event
// log, or say with a `pyou.gap` that it cannot.

import { protocols, mayFollow } from './auth.js';

/** Patterns of other sessions' events this page shows. */
export const FOLLOW = ['thread.#', 'handler.*', 'pyou.#', 'effort.#'];

/**
 * `<prefix>-` and 16 hex digits: a session or client id. getRandomValues
 * works over plain http too (randomUUID needs a secure context).
 */
export function randomId(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return `${prefix}-${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * This tab's name for the gateway (`client=`): tabs share the session
 * (kept in localStorage) but each resumes after what it was given.
 * sessionStorage survives a reload of the tab and is not shared.
 */
function tabId() {
  const key = 'pyou.client';
  let id = sessionStorage.getItem(key);
  if (!id) {
    id = randomId('tab');
    sessionStorage.setItem(key, id);
  }
  return id;
}

const LAST_KEY = 'pyou.last';

/** The last event of our session this tab was given: `{id, at}`. */
function lastSeen() {
  try { return JSON.parse(sessionStorage.getItem(LAST_KEY) || 'null'); } catch { return null; }
}

/**
 * Opens `/ws?session=<id>&client=<tab>&after=…` and keeps it open.
 * `onEvent(envelope)` gets every event; `onStatus('open'|'closed',
 * attempt)` each change; `onOpen()` each (re)connection, after which the
 * page reloads its view (followed events are live only). When a socket
 * closes before it ever opened, `refused()` may answer true (the gateway
 * refuses the token): then it waits for `reconnect()`.
 */
export function connect(session, { onEvent, onStatus, onOpen, refused }) {
  const client = tabId();
  let socket = null;
  let attempt = 0;
  let stopped = false;
  let waiting = false;
  const url = () => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const q = new URLSearchParams({ session, client });
    if (mayFollow()) q.set('follow', FOLLOW.join(','));
    const last = lastSeen();
    if (last?.id && last?.at) { q.set('after', last.id); q.set('after_at', last.at); }
    return `${scheme}://${location.host}/ws?${q}`;
  };
  const open = () => {
    waiting = false;
    let opened = false;
    const offered = protocols();
    socket = offered.length ? new WebSocket(url(), offered) : new WebSocket(url());
    socket.addEventListener('open', () => {
      opened = true;
      attempt = 0;
      onStatus('open', 0);
      onOpen();
    });
    socket.addEventListener('message', (m) => {
      let env;
      try { env = JSON.parse(m.data); } catch { return; }
      if (!env || !env.meta) return;
      // Our session's own events are the ones a gateway replays; its
      // notices (`pyou.gap`) are not in any log.
      if (env.meta.session_id === session && env.meta.routing_key !== 'pyou.gap') {
        sessionStorage.setItem(LAST_KEY, JSON.stringify({ id: env.meta.message_id, at: env.meta.timestamp }));
      }
      onEvent(env);
    });
    socket.addEventListener('close', async () => {
      if (stopped) return;
      attempt += 1;
      onStatus('closed', attempt);
      if (!opened && refused && await refused()) { waiting = true; return; }
      // 0.25 s, 0.5 s, 1 s … at most 5 s between tries.
      setTimeout(open, Math.min(5000, 250 * 2 ** Math.min(attempt - 1, 5)));
    });
  };
  open();
  return {
    close() { stopped = true; socket?.close(); },
    /** Opens again at once (after a new token), if it was waiting. */
    reconnect() { if (waiting) open(); else socket?.close(); },
  };
}
