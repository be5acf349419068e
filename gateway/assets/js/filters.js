// The filters the board and the tree share: energy band, state, sprint.

import { h } from './view.js';

export const STATES = ['ready', 'running', 'parked', 'blocked', 'done'];
export const BANDS = ['deep', 'moderate', 'light'];

/** What is shown; changed by the toolbar. */
export const filters = { energy: '', state: '', sprint: '' };

/** Whether a story or task passes the energy and state filters. */
export function passes(t) {
  return (!filters.energy || t.energy === filters.energy) && (!filters.state || t.state === filters.state);
}

function choice(label, key, options, rerender, focusKey) {
  return h('label', {}, label,
    h('select', {
      'data-focus': focusKey,
      onchange: (e) => { filters[key] = e.target.value; rerender(); },
    },
    options.map(([value, text]) => h('option', { value, selected: filters[key] === value }, text))));
}

/** The energy and state filters as form controls. */
export function filterControls(rerender, prefix) {
  return [
    choice('Energy band', 'energy', [['', 'any'], ...BANDS.map((b) => [b, b])], rerender, `${prefix}-energy`),
    choice('State', 'state', [['', 'any'], ...STATES.map((s) => [s, s])], rerender, `${prefix}-state`),
  ];
}
