// A form generated from a JSON Schema object (the catalog's body and
// parameter schemas): one control per property, typed by the schema, and
// a raw-JSON box for anything it does not describe.

import { h } from './view.js';

/** Most properties drawn as controls; past that the raw JSON box is used. */
const MAX_FIELDS = 40;

function control(name, s, required) {
  const id = `f-${Math.random().toString(36).slice(2)}`;
  const label = `${name}${required ? ' *' : ''}`;
  let el;
  let read;
  if (Array.isArray(s.enum)) {
    el = h('select', { id, name },
      h('option', { value: '' }, required ? '(choose)' : '(unset)'),
      s.enum.map((v, i) => h('option', { value: String(i) }, JSON.stringify(v))));
    read = () => (el.value === '' ? undefined : s.enum[Number(el.value)]);
  } else if (s.type === 'boolean') {
    el = h('select', { id, name },
      h('option', { value: '' }, '(unset)'), h('option', { value: 'true' }, 'true'), h('option', { value: 'false' }, 'false'));
    read = () => (el.value === '' ? undefined : el.value === 'true');
  } else if (s.type === 'integer' || s.type === 'number') {
    el = h('input', { id, name, type: 'number', step: s.type === 'integer' ? '1' : 'any', min: s.minimum ?? null, max: s.maximum ?? null, placeholder: s.default !== undefined ? String(s.default) : '' });
    read = () => (el.value === '' ? undefined : Number(el.value));
  } else if (s.type === 'string') {
    el = h('input', { id, name, type: 'text', maxlength: s.maxLength ?? null, placeholder: s.examples?.[0] ?? (s.default !== undefined ? String(s.default) : '') });
    read = () => (el.value === '' ? undefined : el.value);
  } else {
    // Objects, arrays, unions: JSON text (a bare word is taken as a string).
    el = h('input', { id, name, type: 'text', placeholder: 'JSON' });
    read = () => {
      if (el.value.trim() === '') return undefined;
      try { return JSON.parse(el.value); } catch { return el.value; }
    };
  }
  const hint = s.description || (s.pattern ? `pattern ${s.pattern}` : '');
  return { node: h('label', { for: id, title: hint || null }, label, el), name, read };
}

/**
 * A form for `schema`; `onSubmit(value)` gets the object built from the
 * filled-in controls (or the raw JSON box, when it is filled in).
 */
export function schemaForm(schema, { submit, onSubmit }) {
  const props = schema && typeof schema.properties === 'object' ? schema.properties : {};
  const required = new Set(Array.isArray(schema?.required) ? schema.required : []);
  const names = Object.keys(props).slice(0, MAX_FIELDS);
  const controls = names.map((n) => control(n, props[n] || {}, required.has(n)));
  const raw = h('textarea', { name: '$raw', rows: 2, placeholder: names.length ? 'or the whole body as JSON' : 'body as JSON, e.g. {}' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const form = h('form', {
    class: 'schema',
    onsubmit: (e) => {
      e.preventDefault();
      error.textContent = '';
      let value = {};
      if (raw.value.trim()) {
        try { value = JSON.parse(raw.value); } catch (err) { error.textContent = `Not JSON: ${err.message}`; return; }
      } else {
        for (const c of controls) {
          const v = c.read();
          if (v !== undefined) value[c.name] = v;
        }
        const missing = [...required].filter((n) => !(n in value));
        if (missing.length) { error.textContent = `Fill in ${missing.join(', ')}`; return; }
      }
      onSubmit(value);
    },
  },
  controls.map((c) => c.node),
  h('label', {}, 'Raw JSON', raw),
  h('div', {}, h('button', { type: 'submit', class: 'primary' }, submit)),
  error);
  return form;
}
