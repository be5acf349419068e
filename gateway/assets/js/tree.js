// Sagas as a tree with their stories and tasks: state, energy band,
// quantum, time spent against the quantum planned, sprint; an edit form
// per thread; and the archive view.

import { h, mount } from './view.js';
import { model, childrenOf, loadArchive, act } from './store.js';
import { filterControls, passes } from './filters.js';
import { createForms, editForm, sprintEditForm, sprintPicker } from './forms.js';
import { countdown } from './quanta.js';
import { duration, when } from './time.js';
import { spent } from './effort.js';

const editing = new Set();

function spentVsPlanned(used, planned) {
  const ratio = planned ? Math.min(1, used / planned) : 0;
  return h('span', { title: 'time spent vs. planned' },
    h('span', { class: used > planned ? 'bar over' : 'bar' }, h('span', { style: `width:${Math.round(ratio * 100)}%` })),
    ` ${duration(used)} / ${duration(planned)}`);
}

function editToggle(t, rerender) {
  return h('button', {
    type: 'button', 'data-focus': `edit-${t.id}`, 'aria-expanded': editing.has(t.id) ? 'true' : 'false',
    onclick: () => { if (editing.has(t.id)) editing.delete(t.id); else editing.add(t.id); rerender(); },
  }, editing.has(t.id) ? 'Close' : 'Edit');
}

function item(t, rerender) {
  return h('li', { 'data-id': t.id },
    h('span', { class: 'title' }, t.title),
    h('span', { class: 'muted' }, t.kind),
    h('span', { class: `badge ${t.state}` }, t.state),
    h('span', { class: `band ${t.energy}` }, t.energy),
    h('span', {}, `quantum ${t.quantum}${t.saga_id && t.quantum_overridden === false ? ' (saga’s)' : ''}`),
    countdown(t),
    spentVsPlanned(spent(t), t.quantum_ms),
    t.kind === 'story' ? sprintPicker(t, rerender) : null,
    t.blocked_reason ? h('span', { class: 'reason' }, `Blocked: ${t.blocked_reason}`) : null,
    model.refusals.has(t.id) ? h('span', { class: 'form-error', role: 'alert' }, model.refusals.get(t.id)) : null,
    editToggle(t, rerender),
    editing.has(t.id) ? editForm(t, { rerender, close: () => editing.delete(t.id) }) : null);
}

function saga(s, rerender) {
  const children = childrenOf(s.id).filter((c) => !c.archived);
  const visible = children.filter(passes);
  const used = children.reduce((sum, c) => sum + spent(c), 0);
  const planned = children.reduce((sum, c) => sum + (c.quantum_ms || 0), 0);
  const done = children.filter((c) => c.state === 'done').length;
  return h('details', { open: true, 'data-id': s.id },
    h('summary', {},
      h('strong', {}, s.title),
      h('span', { class: `badge ${s.state}` }, s.state),
      h('span', {}, `quantum ${s.quantum}`),
      h('span', { class: 'muted' }, `${done}/${children.length} done`),
      spentVsPlanned(used, planned),
      editToggle(s, rerender),
      s.state === 'active' && children.length && done === children.length
        ? h('button', { type: 'button', onclick: async () => { await act('thread.complete', s.id); rerender(); } }, 'Complete saga') : null,
      s.state === 'done' ? h('button', { type: 'button', onclick: async () => { await act('thread.archive', s.id); rerender(); } }, 'Archive') : null),
    editing.has(s.id) ? h('div', { class: 'body' }, editForm(s, { rerender, close: () => editing.delete(s.id) })) : null,
    model.refusals.has(s.id) ? h('p', { class: 'form-error', role: 'alert' }, model.refusals.get(s.id)) : null,
    h('ul', {}, visible.map((c) => item(c, rerender))));
}

/** The sprints: state (`closing` while the sprintclose saga settles its
 * stories), goal, stories planned, and an edit form each. */
function sprintList(rerender) {
  const sprints = [...model.sprints.values()].sort((a, b) => a.id.localeCompare(b.id));
  if (!sprints.length) return null;
  const planned = (id) => [...model.threads.values()].filter((t) => t.sprint_id === id).length;
  const key = (s) => `sprint:${s.id}`;
  return h('div', { class: 'panel sprints' },
    h('h2', {}, 'Sprints'),
    h('ul', {}, sprints.map((s) => h('li', { 'data-sprint': s.id },
      h('span', { class: 'title' }, s.title),
      h('span', { class: `badge ${s.state}` }, s.state),
      s.goal ? h('span', { class: 'muted' }, s.goal) : null,
      h('span', { class: 'muted' }, `${planned(s.id)} stories`),
      s.state === 'closed' ? null : h('button', {
        type: 'button', 'data-focus': `edit-sprint-${s.id}`, 'aria-expanded': editing.has(key(s)) ? 'true' : 'false',
        onclick: () => { if (editing.has(key(s))) editing.delete(key(s)); else editing.add(key(s)); rerender(); },
      }, editing.has(key(s)) ? 'Close' : 'Edit'),
      editing.has(key(s)) ? sprintEditForm(s, { rerender, close: () => editing.delete(key(s)) }) : null))));
}

/** Draws the sagas tree (and the create forms) into `el`. */
export function renderTree(el) {
  const rerender = () => renderTree(el);
  const all = [...model.threads.values()].filter((t) => !t.archived);
  const sagas = all.filter((t) => t.kind === 'saga').sort((a, b) => (b.priority - a.priority) || a.title.localeCompare(b.title));
  const loose = all.filter((t) => t.kind === 'task' && !t.saga_id && passes(t));
  mount(el,
    h('div', { class: 'toolbar' }, filterControls(rerender, 'tree')),
    h('div', { class: 'tree' },
      sagas.length ? sagas.map((s) => saga(s, rerender)) : h('p', { class: 'muted' }, 'No sagas yet: create one below.'),
      loose.length ? h('details', { open: true }, h('summary', {}, h('strong', {}, 'Tasks without a saga')),
        h('ul', {}, loose.map((t) => item(t, rerender)))) : null),
    sprintList(rerender),
    createForms(rerender));
}

/** Draws the archive (loading it the first time) into `el`. */
export function renderArchive(el) {
  if (!model.archiveLoaded) {
    mount(el, h('p', { class: 'muted' }, 'Loading the archive…'));
    loadArchive().catch((e) => mount(el, h('p', { class: 'form-error', role: 'alert' }, `Cannot load the archive: ${e.message}`)));
    return;
  }
  const archived = [...model.threads.values()].filter((t) => t.archived)
    .sort((a, b) => (b.archived_at || '').localeCompare(a.archived_at || ''));
  mount(el,
    h('h2', {}, `Archive (${archived.length})`),
    archived.length ? h('div', { class: 'tree' }, h('ul', {}, archived.map((t) => h('li', { 'data-id': t.id },
      h('span', { class: 'title' }, t.title),
      h('span', { class: 'muted' }, t.kind),
      h('span', { class: `badge ${t.state}` }, t.state),
      t.energy ? h('span', { class: `band ${t.energy}` }, t.energy) : null,
      h('span', {}, `quantum ${t.quantum}`),
      h('span', {}, duration(spent(t))),
      h('span', { class: 'muted' }, `archived ${when(t.archived_at)}`)))))
      : h('p', { class: 'muted' }, 'Nothing archived yet.'));
}
