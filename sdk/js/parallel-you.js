// Write Parallel You command handlers in JavaScript.
//
// A handler is a WebAssembly component built with `jco componentize`
// (ComponentizeJS, SpiderMonkey inside) from the `parallel-you:handler` world
// (`wit/handler.wit`). This module wraps the world's imports and export in
// the same shape as the Rust SDK (`sdk/src/lib.rs`) and the Python helper
// (`sdk/python/parallel_you.py`):
//
// * a `Router` declares the domain, its commands (full routing key, summary,
//   optional JSON Schema of the body, and a function taking the parsed body),
//   the events it may publish and the indexes its store should keep
//   (`.index(collection, ...fields)`);
// * each command function receives a `Ctx` (the command's meta, the domain's
//   document store through `Collection`s, `ctx.emit`, timers with
//   `ctx.schedule`, logging) and
//   returns the events it caused (an array of `event(...)`), or throws a
//   `HandlerError`;
// * `export const commandHandler = router.export();` in the app module
//   exports it as the component's `command-handler`.
//
// What the router does for every command:
//
// * a body that is not JSON or not an object is refused with code
//   `validation` (the command's schema is checked by the host before the
//   component runs: see `core/src/schema.rs` for the subset it supports);
// * a routing key the router does not know is refused with
//   `unknown_routing_key`;
// * a store error becomes `conflict` (context `{"current_version": n}`),
//   `not_found`, `invalid_request` or `unavailable`;
// * anything else thrown becomes code `handler_error` with its name and
//   message (and the top of its stack as context): an error event, not a
//   trap.
//
// Reactors (world `reactor`, `wit/reactor.wit`) use the same module: a
// `Reactor` subscribes `fn(ctx, event)` to event patterns with
// `.on("thread.*", fn)` (the first registered match runs; `event` is a
// `Delivered`, `fn` returns an array of `command(...)`), answers queries
// declared with `.query(name, summary, schema, fn)` (`fn(ctx, params)`
// returns any JSON value) and is exported with
// `export const eventReactor = reactor.export();`; build it with
// `--world-name reactor`. The bundle then holds no import of `emitter`
// (bundle.config.js drops unused imports). See handlers/testing/jsfeed.
//
// The module's top level runs once, at build time (the engine is snapshotted
// with Wizer), so building the router there costs nothing per command.
//
// WIT `u64` values (versions, timestamps) are JavaScript BigInts at the
// boundary; this helper hands out plain numbers (exact up to 2^53).

import * as store from "parallel-you:handler/store@0.1.4";
import { emit as witEmit } from "parallel-you:handler/emitter@0.1.4";
import * as scheduler from "parallel-you:handler/scheduler@0.1.4";
import { log as witLog } from "parallel-you:handler/log@0.1.4";

const MAX_MESSAGE = 1000;
const STACK_LINES = 12;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/** Why a command was refused: becomes the error event `<domain>.error`. */
export class HandlerError extends Error {
  /**
   * @param {string} code machine-readable snake_case
   * @param {string} message for humans
   * @param {unknown} [context] any JSON value with details
   */
  constructor(code, message, context) {
    super(`${code}: ${message}`);
    this.name = "HandlerError";
    this.code = code;
    this.detail = message;
    this.context = context;
  }

  /** Code `validation`: the command's body is wrong. */
  static validation(message, context) {
    return new HandlerError("validation", message, context);
  }

  /** Code `not_found`: what the command refers to does not exist. */
  static notFound(message, context) {
    return new HandlerError("not_found", message, context);
  }

  /** Code `invalid_transition`: not allowed in the current state. */
  static invalidTransition(message, context) {
    return new HandlerError("invalid_transition", message, context);
  }

  /** Code `conflict`: an expected version did not match. */
  static conflict(currentVersion) {
    const n = Number(currentVersion);
    return new HandlerError("conflict", `version conflict: the current version is ${n}`, {
      current_version: n,
    });
  }

  /** Code `handler_error`: nothing more specific fits. */
  static internal(message, context) {
    return new HandlerError("handler_error", message, context);
  }

  /** Maps a WIT `store-error` (`{tag, val}`) the way the Rust SDK does. */
  static fromStore(err) {
    switch (err && err.tag) {
      case "conflict":
        return HandlerError.conflict(err.val);
      case "not-found":
        return HandlerError.notFound("document not found");
      case "invalid":
        return new HandlerError("invalid_request", String(err.val));
      case "unavailable":
        return new HandlerError("unavailable", String(err.val));
      default:
        return HandlerError.internal(`unexpected store error: ${describe(err)}`);
    }
  }

  /** The WIT `handler-error` record. */
  toWit() {
    return {
      code: this.code,
      message: this.detail,
      context: this.context === undefined ? undefined : JSON.stringify(this.context),
    };
  }
}

function describe(value) {
  try {
    return JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? Number(v) : v));
  } catch {
    return String(value);
  }
}

/** Anything thrown that is not a `HandlerError`, as `handler_error` (exported for reactor.js). */
export function unexpected(thrown) {
  const name = thrown instanceof Error ? thrown.name : typeof thrown;
  let message = `${name}: ${thrown instanceof Error ? thrown.message : describe(thrown)}`;
  if (message.length > MAX_MESSAGE) message = message.slice(0, MAX_MESSAGE) + "…";
  const context = { exception: name };
  if (thrown instanceof Error && typeof thrown.stack === "string") {
    context.stack = thrown.stack.split("\n").filter(Boolean).slice(0, STACK_LINES);
  }
  return HandlerError.internal(`the handler threw ${message}`, context);
}

// ---------------------------------------------------------------------------
// Events, store, context
// ---------------------------------------------------------------------------

/** An event to return or emit; `body` is any JSON value (default `{}`). */
export function event(routingKey, body = {}) {
  return { routingKey, body: JSON.stringify(body) };
}

function storeCall(fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    // The bindings throw the WIT error value wrapped in a ComponentError
    // whose `payload` is the `store-error` variant.
    throw HandlerError.fromStore(e && e.payload !== undefined ? e.payload : e);
  }
}

function decode(collection, d) {
  try {
    return { id: d.id, version: Number(d.version), value: JSON.parse(d.json) };
  } catch (e) {
    throw HandlerError.internal(
      `stored document \`${d.id}\` in \`${collection}\` does not decode: ${e.message}`,
    );
  }
}

/** One collection of the domain's document store, JSON in and out. */
export class Collection {
  constructor(name) {
    this.name = name;
  }

  /** `{id, version, value}` or `null`. */
  get(id) {
    const d = storeCall(store.get, this.name, id);
    return d === undefined || d === null ? null : decode(this.name, d);
  }

  /** The document, or a `not_found` HandlerError. */
  require(id) {
    const doc = this.get(id);
    if (doc === null) {
      throw HandlerError.notFound(`no \`${id}\` in \`${this.name}\``, {
        collection: this.name,
        id,
      });
    }
    return doc;
  }

  /**
   * The documents matching `filter` (`{field: value}`,
   * `{field: {$ne|$in|$exists|$contains: …}}`, `$limit: n`), ordered by id.
   */
  list(filter = {}) {
    return storeCall(store.list, this.name, JSON.stringify(filter)).map((d) =>
      decode(this.name, d),
    );
  }

  /**
   * Writes `value` (a JSON object); returns the new version.
   * `expectedVersion`: undefined writes unconditionally, 0 only creates,
   * v only replaces version v (otherwise `conflict`).
   */
  put(id, value, expectedVersion) {
    const expected = expectedVersion === undefined ? undefined : BigInt(expectedVersion);
    return Number(storeCall(store.upsert, this.name, id, JSON.stringify(value), expected));
  }

  /** Deletes a document; true if it existed. */
  delete(id) {
    return storeCall(store.delete, this.name, id);
  }

  /** Deletes every document of the collection. */
  clear() {
    storeCall(store.clear, this.name);
  }
}

/**
 * What a reactor's query function gets besides its parameters: the
 * domain's store (read-only: the host fails any write) and logging.
 */
export class QueryCtx {
  collection(name) {
    return new Collection(name);
  }

  log(level, message) {
    witLog(level, String(message));
  }

  debug(message) {
    this.log("debug", message);
  }

  info(message) {
    this.log("info", message);
  }

  warn(message) {
    this.log("warn", message);
  }

  error(message) {
    this.log("error", message);
  }
}

/**
 * What a reactor's event function gets besides the event: the event's
 * meta, the domain's store, timers and logging.
 */
export class ReactorCtx extends QueryCtx {
  constructor(meta) {
    super();
    this.meta = meta;
  }

  get routingKey() {
    return this.meta.routingKey;
  }

  /** The message's unique id (a ULID: sortable by time). */
  get messageId() {
    return this.meta.messageId;
  }

  get correlationId() {
    return this.meta.correlationId;
  }

  get sessionId() {
    return this.meta.sessionId;
  }

  /** Who sent the command: the token's subject, as the gateway verified it (undefined without authentication). */
  get userId() {
    return this.meta.userId;
  }

  /** When the message was created, in ms since the Unix epoch (a number). */
  get timestampMs() {
    return Number(this.meta.timestampMs);
  }

  /**
   * Has `routingKey` (of this component's own domain) with `body`
   * delivered after `delayMs`, surviving host restarts: to a handler as
   * that command, with this command's session and reply channel; to a
   * reactor as an event to itself. Returns the timer id.
   */
  schedule(delayMs, routingKey, body = {}) {
    return storeCall(scheduler.schedule, BigInt(delayMs), routingKey, JSON.stringify(body));
  }

  /** Cancels a timer of this domain; true if it was still pending. */
  cancel(timerId) {
    return storeCall(scheduler.cancel, timerId);
  }
}

/** What a command function gets besides its body. */
export class Ctx extends ReactorCtx {
  /**
   * Adds an event to the command's output: published when the command
   * commits, before the returned events; never if the command fails.
   */
  emit(routingKey, body = {}) {
    witEmit(event(routingKey, body));
  }
}

export const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

// ---------------------------------------------------------------------------
// Router and export
// ---------------------------------------------------------------------------

/** A handler's domain, version, commands, events and indexes. */
export class Router {
  constructor(domain, version) {
    this.domain = domain;
    this.version = version;
    this.routes = new Map();
    this.events = [];
    this.indexes = [];
  }

  /**
   * Adds a command: its full routing key, a one-line summary, the JSON
   * Schema of its body (or null; published in the manifest and checked by
   * the host before `fn` runs) and `fn(ctx, body)` returning an array of events.
   */
  command(routingKey, summary, schema, fn) {
    if (this.routes.has(routingKey)) throw new Error(`${routingKey} is declared twice`);
    this.routes.set(routingKey, {
      summary,
      schemaJson: schema ? JSON.stringify(schema) : undefined,
      internal: false,
      fn,
    });
    this.last = routingKey;
    return this;
  }

  /**
   * Marks the last added command internal: only this component's own
   * timers send it (the gateway refuses it from clients and leaves it out
   * of `/api`).
   */
  internal() {
    const route = this.routes.get(this.last);
    if (route) route.internal = true;
    return this;
  }

  /** Declares routing keys of events it may publish (documentation). */
  emits(...routingKeys) {
    this.events.push(...routingKeys);
    return this;
  }

  /**
   * Asks the store to index `fields` (in order; `a.b` reaches into nested
   * objects) of `collection`, for the `list` filters and sorts its commands
   * run. The host creates it when it loads the component; an index changes
   * how fast `list` answers, never what.
   */
  index(collection, ...fields) {
    this.indexes.push({ collection, fields });
    return this;
  }

  manifest() {
    return {
      domain: this.domain,
      version: this.version,
      commands: [...this.routes].map(([routingKey, r]) => ({
        routingKey,
        summary: r.summary,
        bodySchema: r.schemaJson,
        internal: r.internal,
      })),
      events: [...this.events],
      indexes: this.indexes.map((i) => ({ collection: i.collection, fields: [...i.fields] })),
    };
  }

  /** Runs the command for `ctx.routingKey`; returns events or throws. */
  dispatch(ctx, bodyText) {
    const route = this.routes.get(ctx.routingKey);
    if (!route) {
      throw new HandlerError(
        "unknown_routing_key",
        `the \`${this.domain}\` handler has no command \`${ctx.routingKey}\``,
        { routing_key: ctx.routingKey, commands: [...this.routes.keys()] },
      );
    }
    let body;
    try {
      body = JSON.parse(bodyText.trim() === "" ? "{}" : bodyText);
    } catch (e) {
      throw HandlerError.validation(`invalid body: ${e.message}`);
    }
    if (!isObject(body)) throw HandlerError.validation("invalid body: expected a JSON object");
    return [...(route.fn(ctx, body) || [])];
  }

  /**
   * The export's `handle`: events, or the WIT error; never lets anything
   * else escape (that would trap the instance).
   */
  handle(cmd) {
    try {
      return this.dispatch(new Ctx(cmd.meta), cmd.body);
    } catch (e) {
      const err = e instanceof HandlerError ? e : unexpected(e);
      // ComponentizeJS turns a thrown value into `result::err` when it
      // carries the error as `payload`.
      throw { payload: err.toWit() };
    }
  }

  /** The object to export as `commandHandler`. */
  export() {
    return {
      manifest: () => this.manifest(),
      handle: (cmd) => this.handle(cmd),
    };
  }
}

// The reactor side lives in reactor.js (which imports the names above it
// needs); re-exported so that both halves are one API.
export { Delivered, Reactor, command, topicMatches } from "./reactor.js";
