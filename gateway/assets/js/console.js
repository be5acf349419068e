// The generic console: every command and query the gateway lists at
// `GET /api`, each with a form generated from its schema; it sends it and
// shows the resulting events or error. It follows `handler.*` events, so a
// domain dropped into the handlers folder appears without a reload.

import { h, mount } from './view.js';
import { catalog, send, query } from './api.js';
import { schemaForm } from './schema_form.js';
import { notice } from './quanta.js';

const state = { commands: [], queries: [], loaded: false, error: '', filter: '' };
/** Entries the user opened, kept open across redraws. */
const opened = new Set();
let container = null;

async function load() {
  try {
    const c = await catalog();
    state.commands = c.commands || [];
    state.queries = c.queries || [];
    state.error = '';
  } catch (e) {
    state.error = e.message;
  }
  state.loaded = true;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A handler was loaded, upgraded or unloaded: re-read the catalog until it
 * shows the change (the gateway reloads its catalog on the same event, a
 * moment later), at most ten times.
 */
export async function followHandlers(env) {
  const key = env.meta.routing_key;
  const b = env.body || {};
  const keys = b.routing_keys || [];
  const gone = key === 'handler.unloaded';
  if (key === 'handler.loaded' || key === 'handler.unloaded') {
    notice(`${gone ? 'Unloaded' : 'Loaded'} ${b.domain || b.file} ${b.version || ''}`, { id: `handler-${b.domain}` });
  }
  for (let i = 0; i < 10; i += 1) {
    await load();
    const have = new Set(state.commands.map((c) => c.routing_key));
    if (keys.every((k) => have.has(k) !== gone)) break;
    await sleep(200);
  }
  if (container && !container.hidden) renderConsole(container);
}

/** The box under a form that shows its last answer (written in place). */
function answerBox(id) {
  return h('pre', { role: 'status', 'data-answer': id, hidden: true });
}

function show(box, text, error) {
  box.hidden = false;
  box.textContent = text;
  box.classList.toggle('form-error', error);
}

function entry(id, summary, form, box) {
  return h('details', {
    'data-key': id, open: opened.has(id),
    ontoggle: (e) => { if (e.target.open) opened.add(id); else opened.delete(id); },
  }, h('summary', {}, summary), h('div', { class: 'body' }, form, box));
}

function commandEntry(c) {
  const box = answerBox(c.routing_key);
  const form = schemaForm(c.body_schema || {}, {
    submit: 'Send',
    onSubmit: async (body) => {
      const { events, error } = await send(c.routing_key, body);
      show(box, events.length
        ? events.map((e) => `${e.meta.routing_key}\n${JSON.stringify(e.body, null, 2)}`).join('\n\n')
        : `no event: ${error?.message || 'none within 5 s'}`, Boolean(error));
    },
  });
  return entry(c.routing_key, [h('code', {}, c.routing_key), c.summary ? ` — ${c.summary}` : ''], form, box);
}

function queryEntry(q) {
  const box = answerBox(q.path);
  const form = schemaForm(q.params_schema || {}, {
    submit: 'Ask',
    onSubmit: async (params) => {
      try {
        const a = await query(q.domain, q.name, params);
        show(box, a === null ? 'nothing recorded' : JSON.stringify(a, null, 2), false);
      } catch (e) {
        show(box, e.message, true);
      }
    },
  });
  return entry(q.path, [h('code', {}, `${q.domain}/${q.name}`), ' (query)', q.summary ? ` — ${q.summary}` : ''], form, box);
}

/** Draws the console into `el` (reading the catalog the first time). */
export function renderConsole(el) {
  container = el;
  if (!state.loaded) {
    mount(el, h('p', { class: 'muted' }, 'Reading the catalog…'));
    load().then(() => renderConsole(el));
    return;
  }
  // Forms keep what was typed: only redraw the list when it changed.
  const signature = JSON.stringify([state.commands.map((c) => c.routing_key), state.queries.map((q) => q.path), state.error, state.filter]);
  if (el.dataset.signature === signature) return;
  el.dataset.signature = signature;
  const match = (s) => !state.filter || s.includes(state.filter);
  const domains = [...new Set(state.commands.map((c) => c.routing_key.split('.')[0]))].sort();
  mount(el,
    h('h2', {}, `Console: ${state.commands.length} commands, ${state.queries.length} queries`),
    state.error ? h('p', { class: 'form-error', role: 'alert' }, state.error) : null,
    h('div', { class: 'toolbar' }, h('label', {}, 'Find', h('input', {
      type: 'search', value: state.filter, 'data-focus': 'console-find',
      oninput: (e) => { state.filter = e.target.value.trim(); renderConsole(el); },
    }))),
    h('div', { class: 'console' },
      domains.map((d) => {
        const list = state.commands.filter((c) => c.routing_key.split('.')[0] === d && match(c.routing_key));
        return list.length ? [h('h3', {}, d), list.map(commandEntry)] : null;
      }),
      state.queries.some((q) => match(q.path)) ? h('h3', {}, 'Queries') : null,
      state.queries.filter((q) => match(q.path)).map(queryEntry)));
}
