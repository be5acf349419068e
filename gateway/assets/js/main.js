// Wires the page: the session (kept in localStorage, so a reload or a
// server restart resumes it), the socket, the model, and the views.

import { useSession, catalog } from './api.js';
import { takeFromFragment, onRefused, setToken, bearer } from './auth.js';
import { connect, randomId } from './ws.js';
import { model, apply, reload, subscribe } from './store.js';
import { batched } from './view.js';
import { renderBoard } from './board.js';
import { renderTree, renderArchive } from './tree.js';
import { renderConsole, followHandlers } from './console.js';
import { renderTime, timeChanged } from './charts.js';
import { startClock, notice, quantumExpired, notificationButton } from './quanta.js';
import { refreshAll, refreshSaga, RUN_ENDS } from './effort.js';
import { h } from './view.js';

const SESSION_KEY = 'pyou.session';

/** This browser's session id: made once, then kept. */
function sessionId() {
  let id = localStorage.getItem(SESSION_KEY);
  if (!id || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
    id = randomId('dash');
    localStorage.setItem(SESSION_KEY, id);
  }
  return id;
}

const VIEWS = {
  board: renderBoard,
  sagas: renderTree,
  time: renderTime,
  archive: renderArchive,
  console: renderConsole,
};

function current() {
  const name = location.hash.slice(1);
  return name in VIEWS ? name : 'board';
}

/** Whether the threads were read once; the first draw after marks the
 * page interactive (`performance` mark `pyou-interactive`). */
let loaded = false;

/** Draws the view on screen (the others are drawn when opened). */
const render = batched(() => {
  const name = current();
  for (const section of document.querySelectorAll('main > section')) section.hidden = section.dataset.view !== name;
  for (const a of document.querySelectorAll('.top nav a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  VIEWS[name](document.getElementById(`view-${name}`));
  if (loaded && !document.body.dataset.loaded) {
    performance.mark('pyou-interactive');
    document.body.dataset.loaded = String(model.threads.size);
  }
});

async function resync() {
  try {
    await reload();
    performance.mark('pyou-listed');
    loaded = true;
    render();
    await refreshAll();
    document.getElementById('notices').querySelector('[data-id="load"]')?.remove();
  } catch (e) {
    notice(`Cannot load the threads: ${e.message}`, { kind: 'error', id: 'load' });
  }
  render();
}

function onEvent(env) {
  const key = env.meta.routing_key;
  if (key === 'pyou.gap') {
    notice(env.body?.message || 'Some events were missed: the view was reloaded.', { id: 'gap' });
    resync();
    return;
  }
  if (key.startsWith('handler.')) { followHandlers(env).then(render); return; }
  apply(env);
  if (key === 'thread.quantum.expired') quantumExpired(model.threads.get(env.body?.id) || env.body);
  if (RUN_ENDS.has(key)) {
    const saga = env.body?.saga_id;
    // The effort reactor records the run right after this event.
    setTimeout(() => {
      timeChanged();
      (saga ? refreshSaga(saga) : Promise.resolve()).then(render);
    }, 300);
  }
}

/** The socket, once connected. */
let connection = null;

/**
 * Asks for a token (the gateway runs with `--auth jwt` and refused the
 * one we had, or we had none), saying why; the page waits meanwhile.
 */
function askForToken(message) {
  const box = document.getElementById('login');
  const error = box.querySelector('.form-error');
  error.textContent = bearer() ? `The gateway refused the token: ${message}` : 'This gateway needs a token to show anything.';
  box.hidden = false;
  document.getElementById('main').hidden = true;
  // A refused token is of no more use: the next one is pasted whole.
  const input = box.querySelector('input');
  input.value = '';
  input.focus();
}

function loginForm() {
  const box = document.getElementById('login');
  box.querySelector('form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = box.querySelector('input');
    setToken(input.value);
    try {
      await catalog();
    } catch (err) {
      // A refusal asked again (onRefused); anything else: the socket retries.
      if (err.status === 401) return;
    }
    input.value = '';
    box.hidden = true;
    document.getElementById('main').hidden = false;
    connection?.reconnect();
  });
  onRefused((status, message) => {
    if (status === 401) { askForToken(message); return; }
    const el = notice(`Not allowed: ${message}`, { kind: 'error', id: 'forbidden' });
    el.append(h('button', { type: 'button', onclick: () => { el.remove(); askForToken(message); } }, 'Use another token'));
  });
}

/** Whether a socket that never opened was refused for its token. */
async function tokenRefused() {
  try {
    await catalog();
    return false;
  } catch (e) {
    return e.status === 401;
  }
}

function start() {
  performance.mark('pyou-start');
  takeFromFragment();
  loginForm();
  const id = sessionId();
  useSession(id);
  document.getElementById('session').textContent = id;
  const conn = document.getElementById('conn');
  notificationButton(document.getElementById('notify-btn'));
  const sound = document.getElementById('sound');
  sound.checked = localStorage.getItem('pyou.sound') === '1';
  sound.addEventListener('change', () => localStorage.setItem('pyou.sound', sound.checked ? '1' : '0'));
  subscribe(render);
  window.addEventListener('hashchange', () => { render(); document.getElementById('main').focus({ preventScroll: true }); });
  startClock();
  connection = connect(id, {
    onEvent,
    refused: tokenRefused,
    onStatus: (state, attempt) => {
      conn.dataset.state = state;
      conn.textContent = state === 'open' ? 'live' : `reconnecting (try ${attempt})…`;
    },
    // Followed events are live only: what happened while away is read again.
    onOpen: resync,
  });
  render();
}

start();
