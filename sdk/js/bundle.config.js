// Rolldown options merged into `jco componentize --bundle`: the WIT imports
// are provided by the component's host, not files to bundle.
//
// An external import the bundle does not use is dropped (`no-external`:
// importing our interfaces has no side effects). This is what lets one
// helper serve both worlds: a reactor never uses `Ctx.emit`, so its bundle
// keeps no import of `emitter`, which the `reactor` world does not have.
export default {
  external: [/^parallel-you:handler\//],
  treeshake: { moduleSideEffects: "no-external" },
};
