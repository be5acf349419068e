// Time and effort: time actually spent (the `effort` reactor's queries)
// against time planned (the quanta of the stories and tasks), per saga,
// sprint, energy band and day, as inline SVG; and a sprint's burn-down.

import { h, mount } from './view.js';
import { query } from './api.js';
import { model, childrenOf } from './store.js';
import { BANDS } from './filters.js';
import { duration, dayLabel, utcDay, when } from './time.js';
import { spent, effortAvailable } from './effort.js';

const DAYS = 14;
const data = { days: null, sprints: new Map(), stale: true, loading: false, error: '' };
let burnSprint = '';

/** The recorded time changed (a run ended): re-read it when next drawn. */
export function timeChanged() { data.stale = true; }

async function load() {
  data.loading = true;
  try {
    const from = utcDay(new Date(Date.now() - (DAYS - 1) * 86400000));
    data.days = await query('effort', 'by_day', { from });
    const sprints = [...model.sprints.keys()].slice(0, 100);
    const answers = await Promise.all(sprints.map((id) => query('effort', 'by_sprint', { id }).catch(() => null)));
    data.sprints = new Map(sprints.map((id, i) => [id, answers[i]]));
    data.error = '';
  } catch (e) {
    data.error = e.message;
  }
  data.loading = false;
  data.stale = false;
}

/** Horizontal bars: spent over planned for each row. */
function spentPlanned(title, rows) {
  const width = 360;
  const left = 110;
  const rowH = 30;
  const max = Math.max(1, ...rows.flatMap((r) => [r.spent, r.planned]));
  const x = (ms) => ((width - left - 70) * ms) / max;
  const height = rows.length * rowH + 10;
  return h('figure', { class: 'panel' },
    h('figcaption', {}, h('h3', {}, title)),
    rows.length ? h('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `${title}: ${rows.map((r) => `${r.label} ${duration(r.spent)} of ${duration(r.planned)}`).join('; ')}` },
      rows.map((r, i) => {
        const y = i * rowH + 4;
        return h('g', {},
          h('text', { x: 0, y: y + 15 }, r.label.length > 16 ? `${r.label.slice(0, 15)}…` : r.label),
          h('rect', { class: 'planned', x: left, y, width: Math.max(1, x(r.planned)), height: 10 }, h('title', {}, `planned ${duration(r.planned)}`)),
          h('rect', { class: 'spent', x: left, y: y + 12, width: Math.max(1, x(r.spent)), height: 10 }, h('title', {}, `spent ${duration(r.spent)}`)),
          h('text', { x: left + x(Math.max(r.spent, r.planned)) + 4, y: y + 15 }, `${duration(r.spent)} / ${duration(r.planned)}`));
      })) : h('p', { class: 'muted' }, 'Nothing yet.'),
    h('div', { class: 'legend' }, h('span', {}, h('i', { style: 'background:#b9c3cf' }), 'planned'), h('span', {}, h('i', { style: 'background:var(--running)' }), 'spent')));
}

/** Stacked columns: time per day, by energy band. */
function perDay(days) {
  const width = 360;
  const height = 150;
  const bottom = 125;
  const byDay = new Map((days?.days || []).map((d) => [d.day, d]));
  const list = [];
  for (let i = DAYS - 1; i >= 0; i -= 1) list.push(utcDay(new Date(Date.now() - i * 86400000)));
  const max = Math.max(1, ...list.map((d) => byDay.get(d)?.ms || 0));
  const col = (width - 10) / DAYS;
  return h('figure', { class: 'panel' },
    h('figcaption', {}, h('h3', {}, `Per day (last ${DAYS})`)),
    h('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `time per day: ${list.map((d) => `${dayLabel(d)} ${duration(byDay.get(d)?.ms || 0)}`).join('; ')}` },
      h('line', { class: 'axis', x1: 0, x2: width, y1: bottom, y2: bottom }),
      list.map((d, i) => {
        let y = bottom;
        const entry = byDay.get(d);
        const bars = BANDS.map((band) => {
          const ms = entry?.by_energy?.[band] || 0;
          const hgt = ((bottom - 10) * ms) / max;
          y -= hgt;
          return ms ? h('rect', { class: band, x: i * col + 4, y, width: col - 4, height: hgt }, h('title', {}, `${dayLabel(d)} ${band} ${duration(ms)}`)) : null;
        });
        // Every third day is labelled, counting back from today.
        return h('g', {}, bars, (DAYS - 1 - i) % 3 === 0 ? h('text', { x: i * col + 2, y: bottom + 14 }, dayLabel(d)) : null);
      })),
    h('div', { class: 'legend' }, BANDS.map((b) => h('span', {}, h('i', { style: `background:var(--${b})` }), b))),
    h('p', { class: 'muted' }, `Total ${duration(days?.ms || 0)}`));
}

/** A sprint's burn-down: planned quantum left over time, against the ideal line. */
function burnDown(sprint) {
  const stories = [...model.threads.values()].filter((t) => t.sprint_id === sprint.id);
  const start = Date.parse(sprint.created_at) || Date.now();
  const end = Math.max(Date.now(), start + 60000);
  const total = stories.reduce((s, t) => s + (t.quantum_ms || 0), 0);
  const done = stories.filter((t) => t.completed_at).sort((a, b) => Date.parse(a.completed_at) - Date.parse(b.completed_at));
  const width = 360; const height = 160; const left = 56; const bottom = 135;
  const x = (t) => left + ((width - left - 10) * (t - start)) / (end - start);
  const y = (ms) => bottom - ((bottom - 10) * ms) / Math.max(1, total);
  let left_ = total;
  const points = [[x(start), y(total)]];
  for (const t of done) {
    const at = Date.parse(t.completed_at);
    points.push([x(at), y(left_)]);
    left_ -= t.quantum_ms || 0;
    points.push([x(at), y(left_)]);
  }
  points.push([x(end), y(left_)]);
  return h('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `burn-down of ${sprint.title}: ${duration(left_)} of ${duration(total)} planned left` },
    h('line', { class: 'axis', x1: left, x2: width, y1: bottom, y2: bottom }),
    h('line', { class: 'axis', x1: left, x2: left, y1: 5, y2: bottom }),
    h('text', { x: 0, y: 14 }, duration(total)),
    h('text', { x: 0, y: bottom }, '0'),
    h('text', { x: left, y: bottom + 16 }, when(sprint.created_at)),
    h('text', { x: width - 30, y: bottom + 16 }, 'now'),
    h('line', { class: 'ideal', x1: x(start), y1: y(total), x2: x(end), y2: y(0) }),
    h('polyline', { class: 'line', points: points.map((p) => p.map((n) => n.toFixed(1)).join(',')).join(' ') }));
}

/** Draws the time view into `el`, reading the effort model when it changed. */
export function renderTime(el) {
  if (data.stale && !data.loading) {
    load().then(() => renderTime(el));
    if (!data.days) { mount(el, h('p', { class: 'muted' }, 'Reading the time spent…')); return; }
  }
  const work = [...model.threads.values()].filter((t) => t.kind !== 'saga' && !t.archived);
  const sagas = [...model.threads.values()].filter((t) => t.kind === 'saga' && !t.archived).slice(0, 30);
  const sagaRows = sagas.map((s) => {
    const children = childrenOf(s.id);
    return { label: s.title, spent: children.reduce((n, c) => n + spent(c), 0), planned: children.reduce((n, c) => n + (c.quantum_ms || 0), 0) };
  });
  const sprints = [...model.sprints.values()].sort((a, b) => a.id.localeCompare(b.id));
  const sprintRows = sprints.slice(0, 30).map((s) => ({
    label: s.title,
    spent: data.sprints.get(s.id)?.ms || 0,
    planned: work.filter((t) => t.sprint_id === s.id).reduce((n, t) => n + (t.quantum_ms || 0), 0),
  }));
  const bandRows = BANDS.map((b) => ({
    label: b,
    spent: data.days?.by_energy?.[b] || 0,
    planned: work.filter((t) => t.energy === b).reduce((n, t) => n + (t.quantum_ms || 0), 0),
  }));
  const chosen = model.sprints.get(burnSprint) || sprints[sprints.length - 1];
  mount(el,
    h('h2', {}, 'Time and effort'),
    !effortAvailable() || data.error ? h('p', { class: 'form-error', role: 'alert' }, data.error || 'The effort reactor does not answer here: no time recorded.') : null,
    h('div', { class: 'charts' },
      spentPlanned('Per saga', sagaRows),
      spentPlanned('Per sprint', sprintRows),
      spentPlanned(`Per energy band (last ${DAYS} days)`, bandRows),
      perDay(data.days),
      h('figure', { class: 'panel' },
        h('figcaption', {}, h('h3', {}, 'Sprint burn-down')),
        sprints.length ? [
          h('label', { class: 'inline' }, 'Sprint', h('select', {
            'data-focus': 'burn-sprint',
            onchange: (e) => { burnSprint = e.target.value; renderTime(el); },
          }, sprints.map((s) => h('option', { value: s.id, selected: chosen?.id === s.id }, s.title)))),
          chosen ? burnDown(chosen) : null,
        ] : h('p', { class: 'muted' }, 'No sprint yet.'))));
}
