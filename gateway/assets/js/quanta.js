// Running quanta: a live countdown on every running story or task, and a
// clear notice when `thread.quantum.expired` arrives (the Notification API
// when allowed, and a short tone if sound is on).

import { h } from './view.js';
import { clock } from './time.js';

/** A countdown element for a running thread (updated by `tick`), or null. */
export function countdown(t) {
  if (t.state !== 'running' || !t.quantum_ends_at) return null;
  const over = Boolean(t.quantum_expired_at);
  return h('span', {
    class: over ? 'countdown over' : 'countdown',
    'data-ends': t.quantum_ends_at,
    'data-over': over ? '1' : null,
    'aria-label': over ? 'quantum over' : 'time left in this quantum',
  }, over ? 'quantum over' : clock(Date.parse(t.quantum_ends_at) - Date.now()));
}

/** Updates every countdown on the page; called four times a second. */
function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll('[data-ends]')) {
    if (el.dataset.over) continue;
    const left = Date.parse(el.dataset.ends) - now;
    el.textContent = left > 0 ? clock(left) : '0:00';
  }
}

let started = false;
/** Starts the countdown clock (once). */
export function startClock() {
  if (started) return;
  started = true;
  setInterval(tick, 250);
}

/** Shows a notice at the top of the page until dismissed. */
export function notice(text, { kind = 'info', id } = {}) {
  const box = document.getElementById('notices');
  if (id) box.querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove();
  const el = h('div', { class: kind === 'error' ? 'notice error' : 'notice', role: 'alert', 'data-id': id || null },
    h('span', {}, text),
    h('button', { type: 'button', onclick: () => el.remove(), 'aria-label': 'Dismiss' }, 'Dismiss'));
  box.append(el);
  return el;
}

/** A quantum ran out on thread `t`: say so everywhere we may. */
export function quantumExpired(t) {
  const title = t?.title || t?.id || 'a thread';
  notice(`Quantum over: “${title}” has run its ${t?.quantum || ''} quantum. Time to step back.`, { id: `expired-${t?.id}` });
  if ('Notification' in window && Notification.permission === 'granted') {
    try { new Notification('Quantum over', { body: title, tag: `pyou-${t?.id}` }); } catch { /* not from a page context */ }
  }
  if (document.getElementById('sound')?.checked) beep();
}

function beep() {
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 660;
    gain.gain.setValueAtTime(0.15, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.6);
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.6);
  } catch { /* no audio here */ }
}

/** Wires the Notifications button: asks for permission on a click. */
export function notificationButton(button) {
  if (!('Notification' in window)) { button.hidden = true; return; }
  const show = () => {
    button.textContent = Notification.permission === 'granted' ? 'Notifications on' : 'Notifications';
    button.disabled = Notification.permission !== 'default';
  };
  show();
  button.addEventListener('click', async () => { await Notification.requestPermission(); show(); });
}
