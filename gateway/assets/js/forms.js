// Create and edit forms for sagas, stories, tasks and sprints. Each sends
// the domain's command; the domain checks everything and a refusal is
// shown next to the form.

import { h } from './view.js';
import { model, command } from './store.js';
import { BANDS } from './filters.js';

/** Drafts of every form, by form name and field, kept across re-renders. */
const drafts = new Map();
const errors = new Map();

function draft(form, field) { return drafts.get(`${form}.${field}`) ?? ''; }

function field(form, f) {
  const common = {
    name: f.name, 'data-focus': `${form}-${f.name}`, required: f.required || null,
    oninput: (e) => drafts.set(`${form}.${f.name}`, e.target.value),
    onchange: (e) => drafts.set(`${form}.${f.name}`, e.target.value),
  };
  let control;
  if (f.options) {
    const value = draft(form, f.name) || f.default || '';
    control = h('select', common, f.options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
  } else {
    control = h('input', { ...common, type: f.type || 'text', placeholder: f.placeholder || '', value: draft(form, f.name), maxlength: f.max || null, min: f.min ?? null });
  }
  return h('label', {}, f.label, control);
}

/**
 * A form sending `key` with the non-empty fields (numbers as numbers).
 * `fixed` adds body fields not shown. `done()` runs after a success.
 */
function commandForm(name, key, fields, { submit, fixed = {}, done, rerender }) {
  const err = errors.get(name);
  return h('form', {
    class: 'create', 'data-form': name,
    onsubmit: async (e) => {
      e.preventDefault();
      const body = { ...fixed };
      for (const f of fields) {
        // A select nobody touched sends what it shows: its first option.
        const shown = f.default ?? (f.options ? f.options[0]?.[0] : '');
        const raw = (drafts.get(`${name}.${f.name}`) || shown || '').toString().trim();
        if (raw === '') continue;
        body[f.name] = f.type === 'number' ? Number(raw) : raw;
      }
      const error = await command(key, body);
      if (error) errors.set(name, error.message || error.code);
      else {
        errors.delete(name);
        for (const f of fields) if (!f.keep) drafts.delete(`${name}.${f.name}`);
        done?.();
      }
      rerender();
    },
  },
  fields.map((f) => field(name, f)),
  h('button', { type: 'submit', class: 'primary', 'data-focus': `${name}-submit` }, submit),
  err ? h('p', { class: 'form-error', role: 'alert' }, err) : null);
}

const QUANTUM_HINT = 'e.g. 25m, 1h30m, 2s';

function sagaChoices(optional) {
  const sagas = [...model.threads.values()].filter((t) => t.kind === 'saga' && !t.archived && t.state !== 'done')
    .sort((a, b) => a.title.localeCompare(b.title));
  return [...(optional ? [['', '(no saga)']] : []), ...sagas.map((s) => [s.id, s.title])];
}

const bandField = { name: 'energy', label: 'Energy band', options: BANDS.map((b) => [b, b]), default: 'moderate', keep: true };

/** The four create forms. */
export function createForms(rerender) {
  return h('div', { class: 'panel' },
    h('h2', {}, 'Create'),
    h('h3', {}, 'Saga'),
    commandForm('saga', 'thread.saga.create', [
      { name: 'title', label: 'Title', required: true, max: 200 },
      { name: 'quantum', label: 'Quantum', placeholder: QUANTUM_HINT },
      { name: 'priority', label: 'Priority', type: 'number', min: 0 },
      { name: 'id', label: 'Id (optional)', placeholder: 'v2' },
    ], { submit: 'Create saga', rerender }),
    h('h3', {}, 'Story'),
    commandForm('story', 'thread.story.create', [
      { name: 'saga_id', label: 'Saga', options: sagaChoices(false), keep: true, required: true },
      { name: 'title', label: 'Title', required: true, max: 200 },
      bandField,
      { name: 'quantum', label: 'Quantum (own)', placeholder: QUANTUM_HINT },
      { name: 'id', label: 'Id (optional)' },
    ], { submit: 'Create story', rerender }),
    h('h3', {}, 'Task'),
    commandForm('task', 'thread.task.create', [
      { name: 'title', label: 'Title', required: true, max: 200 },
      { name: 'saga_id', label: 'Saga', options: sagaChoices(true), keep: true },
      bandField,
      { name: 'quantum', label: 'Quantum', placeholder: QUANTUM_HINT },
    ], { submit: 'Create task', rerender }),
    h('h3', {}, 'Sprint'),
    commandForm('sprint', 'thread.sprint.create', [
      { name: 'title', label: 'Title', required: true, max: 200 },
      { name: 'goal', label: 'Goal' },
      { name: 'id', label: 'Id (optional)' },
    ], { submit: 'Create sprint', rerender }));
}

/** An edit form for thread `t` (`thread.update` with what was filled in). */
export function editForm(t, { rerender, close }) {
  const name = `edit-${t.id}`;
  const fields = [
    { name: 'title', label: 'Title', placeholder: t.title },
    { name: 'notes', label: 'Notes', placeholder: t.notes || '' },
    { name: 'priority', label: 'Priority', type: 'number', min: 0, placeholder: String(t.priority) },
    { name: 'quantum', label: 'Quantum', placeholder: t.quantum },
  ];
  if (t.kind !== 'saga') fields.push({ ...bandField, default: t.energy, keep: false });
  return commandForm(name, 'thread.update', fields, { submit: 'Save', fixed: { id: t.id, expected_version: t.version }, done: close, rerender });
}

/** An edit form for sprint `s` (`thread.sprint.update`). */
export function sprintEditForm(s, { rerender, close }) {
  const fields = [
    { name: 'title', label: 'Title', placeholder: s.title, max: 200 },
    { name: 'goal', label: 'Goal', placeholder: s.goal || '' },
  ];
  return commandForm(`edit-sprint-${s.id}`, 'thread.sprint.update', fields, { submit: 'Save', fixed: { id: s.id, expected_version: s.version }, done: close, rerender });
}

/** Plans story `t` in a sprint, or takes it out. */
export function sprintPicker(t, rerender) {
  const sprints = [...model.sprints.values()].sort((a, b) => a.id.localeCompare(b.id));
  return h('label', { class: 'inline' }, 'Sprint',
    h('select', {
      'data-focus': `sprint-of-${t.id}`,
      'aria-label': `Sprint of ${t.title}`,
      onchange: async (e) => {
        const to = e.target.value;
        const error = to
          ? await command('thread.sprint.add_story', { sprint_id: to, story_id: t.id })
          : await command('thread.sprint.remove_story', { sprint_id: t.sprint_id, story_id: t.id });
        if (error) model.refusals.set(t.id, error.message);
        rerender();
      },
    },
    h('option', { value: '', selected: !t.sprint_id }, '(none)'),
    sprints.map((s) => h('option', { value: s.id, selected: t.sprint_id === s.id }, s.title))));
}
