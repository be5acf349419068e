// The session's WebSocket: reconnects with backoff, resumes the session
// (the gateway replays what it buffered while we were away), and follows
// every thread and handler event so a shared view stays in sync.

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

/**
 * Opens `/ws?session=<id>&client=<tab>` and keeps it open. `onEvent(envelope)` gets
 * every event; `onStatus('open'|'closed', attempt)` each change;
 * `onOpen()` each (re)connection, after which the page reloads its view
 * (followed events are live only).
 */
export function connect(session, { onEvent, onStatus, onOpen }) {
  const client = tabId();
  let socket = null;
  let attempt = 0;
  let stopped = false;
  const url = () => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const q = new URLSearchParams({ session, client, follow: FOLLOW.join(',') });
    return `${scheme}://${location.host}/ws?${q}`;
  };
  const open = () => {
    socket = new WebSocket(url());
    socket.addEventListener('open', () => {
      attempt = 0;
      onStatus('open', 0);
      onOpen();
    });
    socket.addEventListener('message', (m) => {
      let env;
      try { env = JSON.parse(m.data); } catch { return; }
      if (env && env.meta) onEvent(env);
    });
    socket.addEventListener('close', () => {
      if (stopped) return;
      attempt += 1;
      onStatus('closed', attempt);
      // 0.25 s, 0.5 s, 1 s … at most 5 s between tries.
      setTimeout(open, Math.min(5000, 250 * 2 ** Math.min(attempt - 1, 5)));
    });
  };
  open();
  return {
    close() { stopped = true; socket?.close(); },
  };
}
