// Node module hooks for tests/polyglot/test_js_reactor.mjs: the helper's
// WIT imports (`parallel-you:handler/…`) resolve to one in-memory fake,
// whose functions the test replaces (`globalThis.__pyou`).
const FAKE = `
const h = () => globalThis.__pyou;
export const get = (...a) => h().get(...a);
export const list = (...a) => h().list(...a);
export const upsert = (...a) => h().upsert(...a);
export const emit = (...a) => h().emit(...a);
export const schedule = (...a) => h().schedule(...a);
export const cancel = (...a) => h().cancel(...a);
export const log = (...a) => h().log(...a);
const del = (...a) => h().delete(...a);
const clr = (...a) => h().clear(...a);
export { del as delete, clr as clear };
`;

export async function resolve(specifier, context, next) {
  if (specifier.startsWith("parallel-you:handler/")) {
    return { url: "data:text/javascript," + encodeURIComponent(FAKE), shortCircuit: true };
  }
  return next(specifier, context);
}
