// The reactor side of the Parallel You JavaScript helper (world `reactor`,
// `wit/reactor.wit`). Import it from parallel-you.js, which re-exports
// `Reactor`, `Delivered`, `command` and `topicMatches`; see its header and
// handlers/testing/jsfeed/app.js.
//
// It imports `unexpected` and `isObject` from parallel-you.js (exported
// for this module only) and no WIT interface of its own.

import { HandlerError, QueryCtx, ReactorCtx, isObject, unexpected } from "./parallel-you.js";

/**
 * A command for a reactor to send; `body` is any JSON value (default `{}`).
 * Its routing key must be one the reactor `sends`; the host fills in the
 * meta from the event that caused it.
 */
export function command(routingKey, body = {}) {
  return { routingKey, body: JSON.stringify(body) };
}

/**
 * Whether the AMQP topic `pattern` matches `routingKey`: `*` matches
 * exactly one `.`-separated segment, `#` zero or more. Linear in
 * pattern × key (no backtracking).
 */
export function topicMatches(pattern, routingKey) {
  const key = routingKey.split(".");
  let reach = [true, ...key.map(() => false)];
  for (const seg of pattern.split(".")) {
    const next = key.map(() => false).concat(false);
    if (seg === "#") {
      let on = false;
      reach.forEach((r, j) => {
        on = on || r;
        next[j] = on;
      });
    } else {
      key.forEach((k, j) => {
        if (reach[j] && (seg === "*" || seg === k)) next[j + 1] = true;
      });
    }
    reach = next;
  }
  return reach[key.length];
}

/** An event delivered to a reactor: its `meta` and its parsed `body`. */
export class Delivered {
  constructor(meta, body) {
    this.meta = meta;
    this.body = body;
  }

  get routingKey() {
    return this.meta.routingKey;
  }

  /** The event's unique id (a ULID), the same for every delivery. */
  get messageId() {
    return this.meta.messageId;
  }

  /** When the event was created, in ms since the Unix epoch (a number). */
  get timestampMs() {
    return Number(this.meta.timestampMs);
  }
}

function parseJson(text, what) {
  try {
    return JSON.parse(text.trim() === "" ? "{}" : text);
  } catch (e) {
    throw HandlerError.validation(`invalid ${what}: ${e.message}`);
  }
}

/** Runs `fn`; anything thrown leaves as the WIT error, never as a trap. */
function asResult(fn) {
  try {
    return fn();
  } catch (e) {
    const err = e instanceof HandlerError ? e : unexpected(e);
    throw { payload: err.toWit() };
  }
}

/**
 * A reactor's domain, version, subscriptions, queries, indexes and the
 * commands it may send. An event goes to the **first registered** function
 * whose pattern matches its routing key (register specific patterns before
 * broad ones), like the Rust SDK's `Reactor`.
 */
export class Reactor {
  constructor(domain, version) {
    this.domain = domain;
    this.version = version;
    this.events = [];
    this.queries = new Map();
    this.indexes = [];
    this.commands = [];
  }

  /**
   * Subscribes `fn(ctx, event)` to the events matching `pattern` (`*` one
   * segment, `#` zero or more); `event` is a `Delivered`; `fn` returns an
   * array of `command(...)` (or nothing).
   */
  on(pattern, fn) {
    this.events.push({ pattern, subscribed: true, fn });
    return this;
  }

  /** Handles this reactor's own timers of `routingKey` (not a subscription). */
  onTimer(routingKey, fn) {
    this.events.push({ pattern: routingKey, subscribed: false, fn });
    return this;
  }

  /**
   * Adds a query served at `/api/query/<domain>/<name>`: a one-line summary,
   * the JSON Schema of its parameters (or null) and `fn(ctx, params)`
   * returning any JSON value; `ctx` is a `QueryCtx`.
   */
  query(name, summary, schema, fn) {
    if (this.queries.has(name)) throw new Error(`query ${name} is declared twice`);
    this.queries.set(name, { summary, schemaJson: schema ? JSON.stringify(schema) : undefined, fn });
    return this;
  }

  /** Asks the store to index `fields` (in order) of `collection`. */
  index(collection, ...fields) {
    this.indexes.push({ collection, fields });
    return this;
  }

  /** Declares the commands it may send (the host refuses others). */
  sends(...routingKeys) {
    this.commands.push(...routingKeys);
    return this;
  }

  manifest() {
    return {
      domain: this.domain,
      version: this.version,
      subscribes: this.events.filter((e) => e.subscribed).map((e) => e.pattern),
      sends: [...this.commands],
      queries: [...this.queries].map(([name, q]) => ({
        name,
        summary: q.summary,
        paramsSchema: q.schemaJson,
      })),
      indexes: this.indexes.map((i) => ({ collection: i.collection, fields: [...i.fields] })),
    };
  }

  /** Runs the first function matching `ctx.routingKey`; returns commands or throws. */
  dispatch(ctx, bodyText) {
    const key = ctx.routingKey;
    const route = this.events.find((e) => topicMatches(e.pattern, key));
    if (!route) {
      throw new HandlerError(
        "unknown_routing_key",
        `the \`${this.domain}\` reactor has no function for \`${key}\``,
        { routing_key: key, patterns: this.events.map((e) => e.pattern) },
      );
    }
    const body = parseJson(bodyText, "event body");
    return [...(route.fn(ctx, new Delivered(ctx.meta, body)) || [])];
  }

  /** Answers query `name` as JSON text, or throws. */
  answer(name, paramsText) {
    const q = this.queries.get(name);
    if (!q) {
      throw HandlerError.notFound(`the \`${this.domain}\` reactor has no query \`${name}\``, {
        query: name,
        queries: [...this.queries.keys()],
      });
    }
    const params = parseJson(paramsText, "params");
    if (!isObject(params)) throw HandlerError.validation("invalid params: expected a JSON object");
    const answer = q.fn(new QueryCtx(), params);
    return JSON.stringify(answer === undefined ? null : answer);
  }

  /**
   * The object to export as `eventReactor` (build with
   * `--world-name reactor`).
   */
  export() {
    return {
      manifest: () => this.manifest(),
      onEvent: (ev) => asResult(() => this.dispatch(new ReactorCtx(ev.meta), ev.body)),
      query: (name, params) => asResult(() => this.answer(name, params)),
    };
  }
}
