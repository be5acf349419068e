// Rolldown options merged into `jco componentize --bundle`: the WIT imports
// are provided by the component's host, not files to bundle.
export default {
  external: [/^parallel-you:handler\//],
};
