// The sprint board: a column per state; each card's buttons (or keys, or
// dragging it to a column) send the real command, and a refusal shows
// the error event's message on the card.

import { h, mount } from './view.js';
import { model, act } from './store.js';
import { filters, filterControls, passes, STATES } from './filters.js';
import { countdown } from './quanta.js';
import { duration } from './time.js';
import { spent } from './effort.js';

/** The card actions, in the order shown, with their keyboard keys. */
const ACTIONS = [
  { command: 'thread.start', label: 'Start', key: 's' },
  { command: 'thread.park', label: 'Park', key: 'p' },
  { command: 'thread.block', label: 'Block…', key: 'b' },
  { command: 'thread.unblock', label: 'Unblock', key: 'u' },
  { command: 'thread.complete', label: 'Complete', key: 'c' },
  { command: 'thread.archive', label: 'Archive', key: 'a' },
];

/** The command that moves a card dropped on a column. */
const INTO = { ready: 'thread.unblock', running: 'thread.start', parked: 'thread.park', blocked: 'thread.block', done: 'thread.complete' };

/** Which commands a card offers in each state: the domain still decides. */
function offered(t) {
  if (t.state === 'done') return ['thread.archive'];
  // Every move to another column is offered, allowed or not: a refused
  // one shows the domain's reason on the card.
  const stay = { ready: 'thread.unblock', running: 'thread.start', parked: 'thread.park', blocked: 'thread.block' }[t.state];
  return ACTIONS.map((a) => a.command).filter((c) => c !== 'thread.archive' && c !== stay);
}

/** Card ids with their block-reason form open, and what is typed there
 * (kept across re-renders). */
const blocking = new Set();
const drafts = new Map();

let container;
let rerender = () => {};

function sprintOptions() {
  const sprints = [...model.sprints.values()].sort((a, b) => a.id.localeCompare(b.id));
  return [['', 'All open stories and tasks'], ...sprints.map((s) => [s.id, `Sprint: ${s.title}${s.state && s.state !== 'open' ? ` (${s.state})` : ''}`])];
}

function shown() {
  return [...model.threads.values()].filter((t) => t.kind !== 'saga' && !t.archived
    && (!filters.sprint || t.sprint_id === filters.sprint) && passes(t));
}

async function run(t, command, extra) {
  if (command === 'thread.block' && !extra) {
    blocking.add(t.id);
    rerender();
    return;
  }
  blocking.delete(t.id);
  drafts.delete(t.id);
  await act(command, t.id, extra);
  rerender();
}

function blockForm(t) {
  const input = h('input', { type: 'text', name: 'reason', required: true, maxlength: 500, 'aria-label': `Why is “${t.title}” blocked?`, placeholder: 'reason', 'data-focus': `reason-${t.id}`, value: drafts.get(t.id) || '', oninput: (e) => drafts.set(t.id, e.target.value) });
  const form = h('form', {
    class: 'block-form',
    onsubmit: (e) => { e.preventDefault(); if (input.value.trim()) run(t, 'thread.block', { reason: input.value.trim() }); },
  }, input, h('button', { type: 'submit', class: 'primary' }, 'Block'),
  h('button', { type: 'button', onclick: () => { blocking.delete(t.id); rerender(); } }, 'Cancel'));
  if (!document.activeElement || !document.activeElement.closest?.('.block-form')) queueMicrotask(() => input.focus());
  return form;
}

function card(t) {
  const commands = offered(t);
  const refusal = model.refusals.get(t.id);
  const used = spent(t);
  const ratio = t.quantum_ms ? Math.min(1, used / t.quantum_ms) : 0;
  return h('article', {
    class: 'card', 'data-id': t.id, 'data-state': t.state, tabindex: 0, draggable: 'true',
    'data-focus': `card-${t.id}`,
    'aria-label': `${t.title}, ${t.state}. Keys: ${ACTIONS.filter((a) => commands.includes(a.command)).map((a) => `${a.key} ${a.label.replace('…', '')}`).join(', ')}`,
    ondragstart: (e) => e.dataTransfer.setData('text/plain', t.id),
    onkeydown: (e) => {
      if (e.target !== e.currentTarget || e.ctrlKey || e.metaKey || e.altKey) return;
      const a = ACTIONS.find((x) => x.key === e.key.toLowerCase() && commands.includes(x.command));
      if (a) { e.preventDefault(); run(t, a.command); }
    },
  },
  h('div', { class: 'title' }, t.title),
  h('div', { class: 'meta' },
    h('span', { class: `band ${t.energy}` }, t.energy),
    h('span', { title: 'quantum' }, `quantum ${t.quantum}`),
    countdown(t),
    h('span', { title: 'time spent vs. one quantum planned' },
      h('span', { class: used > t.quantum_ms ? 'bar over' : 'bar' }, h('span', { style: `width:${Math.round(ratio * 100)}%` })),
      ` ${duration(used)} / ${t.quantum}`),
    t.sprint_id ? h('span', {}, `sprint ${model.sprints.get(t.sprint_id)?.title || t.sprint_id}`) : null),
  t.blocked_reason ? h('div', { class: 'reason' }, `Blocked: ${t.blocked_reason}`) : null,
  blocking.has(t.id) ? blockForm(t) : h('div', { class: 'actions' },
    ACTIONS.filter((a) => commands.includes(a.command)).map((a) => h('button', {
      type: 'button', 'data-command': a.command, 'data-focus': `${a.command}-${t.id}`,
      onclick: () => run(t, a.command),
    }, a.label))),
  refusal ? h('div', { class: 'refusal', role: 'alert' }, refusal) : null);
}

/** Cards drawn per column until asked for all: a board of a thousand
 * stories stays quick to draw and to tab through. */
const PER_COLUMN = 100;
const expanded = new Set();

function column(state, cards) {
  const all = expanded.has(state);
  const drawn = all ? cards : cards.slice(0, PER_COLUMN);
  const col = h('div', {
    class: 'column', 'data-column': state,
    ondragover: (e) => { e.preventDefault(); col.classList.add('drop'); },
    ondragleave: () => col.classList.remove('drop'),
    ondrop: (e) => {
      e.preventDefault();
      col.classList.remove('drop');
      const t = model.threads.get(e.dataTransfer.getData('text/plain'));
      if (t && t.state !== state) run(t, INTO[state]);
    },
  },
  h('h3', {}, h('span', {}, state), h('span', { class: 'muted', 'data-count': state }, String(cards.length))),
  drawn.map(card),
  cards.length > drawn.length ? h('button', {
    type: 'button', 'data-focus': `more-${state}`,
    onclick: () => { expanded.add(state); rerender(); },
  }, `Show all ${cards.length}`) : null);
  return col;
}

/** Draws the board into `el`. */
export function renderBoard(el) {
  container = el;
  rerender = () => renderBoard(container);
  const threads = shown().sort((a, b) => (b.priority - a.priority) || a.id.localeCompare(b.id));
  const states = filters.state ? [filters.state] : STATES;
  mount(el,
    h('div', { class: 'toolbar' },
      h('label', {}, 'Sprint', h('select', {
        'data-focus': 'board-sprint',
        onchange: (e) => { filters.sprint = e.target.value; rerender(); },
      }, sprintOptions().map(([v, text]) => h('option', { value: v, selected: filters.sprint === v }, text)))),
      filterControls(rerender, 'board'),
      h('p', { class: 'muted' }, 'Focus a card and press s start, p park, b block, u unblock, c complete, a archive; or drag it to a column.')),
    h('div', { class: 'board', style: states.length === 1 ? 'grid-template-columns:1fr' : null },
      states.map((s) => column(s, threads.filter((t) => t.state === s)))));
}
