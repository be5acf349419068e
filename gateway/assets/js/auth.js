// Bearer tokens, for a gateway that runs with `--auth jwt`. The token is
// typed into the page's prompt or handed over once in the URL fragment
// (`/#token=<jwt>`, never sent to the server in a URL, and taken out of
// the address bar at once); it is kept in sessionStorage (this tab only,
// gone when the tab closes) and sent as `Authorization: Bearer` on every
// request and as the `bearer` WebSocket subprotocol. Without
// authentication there is no token and nothing changes.

const KEY = 'pyou.token';
let token = sessionStorage.getItem(KEY) || '';

/** Takes a token out of the URL fragment (`#token=…` or
 * `#board&token=…`), keeps it, and leaves the rest of the fragment. */
export function takeFromFragment() {
  const parts = location.hash.slice(1).split('&').filter(Boolean);
  const found = parts.find((p) => p.startsWith('token=') || p.startsWith('access_token='));
  if (!found) return;
  setToken(decodeURIComponent(found.slice(found.indexOf('=') + 1)));
  const rest = parts.filter((p) => p !== found).join('&');
  history.replaceState(null, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
}

/** The token, or '' without one. */
export function bearer() { return token; }

export function setToken(t) {
  token = t.trim();
  if (token) sessionStorage.setItem(KEY, token); else sessionStorage.removeItem(KEY);
}

/** `headers` with the token's `Authorization` added, when there is one. */
export function withToken(headers = {}) {
  return token ? { ...headers, authorization: `Bearer ${token}` } : headers;
}

/** What the page offers as WebSocket subprotocols: the gateway takes
 * the token from `bearer, <token>` and echoes `bearer`. */
export function protocols() { return token ? ['bearer', token] : []; }

/**
 * Whether the token lets the socket follow other sessions' events (the
 * `events:follow` scope; a token with no `scope` claim may not). Read
 * from the token's payload only to choose what to ask for: the gateway
 * decides.
 */
export function mayFollow() {
  if (!token) return true;
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, '=')));
    const scope = claims.scope ?? claims.scp;
    const list = Array.isArray(scope) ? scope : String(scope ?? '').split(' ');
    return list.includes('events:follow');
  } catch {
    return false;
  }
}

let refusedHandler = () => {};

/** Who is told when the gateway refuses the token (401) or what it
 * allows (403 on a route the page needs). */
export function onRefused(f) { refusedHandler = f; }

/** Passes a 401/403 answer on; returns whether it was one. */
export function refused(status, message) {
  if (status !== 401 && status !== 403) return false;
  refusedHandler(status, message);
  return true;
}
