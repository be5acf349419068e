// A tiny view layer: build elements from tag, attributes and children,
// and replace a container's children. No framework, no virtual DOM:
// each view re-renders its own container when the model changes.

/**
 * h('button', {class: 'x', onclick: f, 'aria-label': 'y'}, 'text', child)
 * Attributes starting with `on` become listeners; `false`/`null` ones are
 * left out; children may be strings, nodes, arrays or null.
 */
export function h(tag, attrs, ...children) {
  const el = tag === 'svg' || SVG_TAGS.has(tag)
    ? document.createElementNS('http://www.w3.org/2000/svg', tag)
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'value' && 'value' in el) {
      el.value = value;
    } else if (name === 'checked' && 'checked' in el) {
      el.checked = Boolean(value);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

const SVG_TAGS = new Set(['g', 'rect', 'line', 'text', 'path', 'polyline', 'circle', 'title']);

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces `container`'s children, keeping focus on the element with the same `data-focus` key. */
export function mount(container, ...children) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.getAttribute('data-focus') : null;
  container.replaceChildren();
  append(container, children);
  if (key) {
    const again = container.querySelector(`[data-focus="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

/** Calls `f` at most once per animation frame however often it is asked. */
export function batched(f) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; f(); });
  };
}
