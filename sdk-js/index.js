// Plasmoid particles in JavaScript: the runtime's process interface in JS
// terms, a GenServer class and its loop, wire-compatible with the Rust SDK.
//
// Works under both of componentize-js's engines. They differ in how WIT
// types arrive: StarlingMonkey gives u64 as BigInt, `none` as undefined and
// byte lists as Uint8Array; QuickJS gives u64 as Number and `none` as null.
// This module takes and returns the same things under both: timeouts in
// seconds (Numbers), messages as `{ kind: 'data' | 'tagged' | 'exit' |
// 'down' | 'upgrade' | 'http' | 'node-up' | 'node-down', ... }` with payloads as Uint8Array, refs as
// opaque values handed back as they came, and errors as `PlasmoidError`
// with the WIT case as `kind`. (The runtime keeps refs below 2^53, so a
// Number ref is exact.)

import * as wit from 'plasmoid:runtime/process@0.1.0';
import { respond } from 'plasmoid:runtime/http@0.1.0';
import * as codec from './codec.js';
import * as store from './store.js';
import * as pg from './pg.js';

export { codec, store, pg };

let bigU64;
/** A u64 argument in the engine's representation. */
function u64(n) {
  if (bigU64 === undefined) bigU64 = typeof wit.makeRef() === 'bigint';
  return bigU64 ? BigInt(n) : Number(n);
}
/** Whether this engine gives u64 as BigInt: StarlingMonkey does, QuickJS not. */
const bigU64Engine = () => typeof u64(0) === 'bigint';
const none = (v) => v === undefined || v === null;
const ms = (seconds) => (none(seconds) ? undefined : u64(Math.max(0, Math.ceil(seconds * 1000))));
const bytesOf = (b) => (b instanceof Uint8Array ? b : Uint8Array.from(b));

export class PlasmoidError extends Error {
  constructor(kind, detail, what = 'plasmoid') {
    super(none(detail) ? `${what}: ${kind}` : `${what}: ${kind}: ${detail}`);
    this.kind = kind;
    this.detail = detail;
  }
}

/** Run a WIT call whose error is a variant; rethrow it as PlasmoidError. */
function checked(what, f) {
  try {
    return f();
  } catch (e) {
    const p = e && e.payload;
    if (p && typeof p === 'object' && 'tag' in p) throw new PlasmoidError(p.tag, p.val, what);
    throw e;
  }
}

function message(m) {
  if (none(m)) return null;
  const v = m.val;
  switch (m.tag) {
    case 'data': return { kind: 'data', payload: bytesOf(v) };
    case 'tagged': return { kind: 'tagged', sender: v.sender, ref: v.ref, payload: bytesOf(v.payload) };
    case 'exit': return { kind: 'exit', sender: v.sender, reason: v.reason };
    case 'down': return { kind: 'down', sender: v.sender, ref: v.ref, reason: v.reason };
    case 'upgrade': return { kind: 'upgrade' };
    case 'http': return { kind: 'http', request: v };
    case 'node-up': return { kind: 'node-up', node: { id: v.id, name: v.name } };
    case 'node-down': return { kind: 'node-down', node: { id: v.id, name: v.name } };
    default: throw new Error(`unknown message ${m.tag}`);
  }
}

/** The runtime's text form of an exit reason: `normal`, `exception(boom)`, ... */
export function reasonText(r) {
  if (none(r.val) || (r.tag === 'shutdown' && r.val === '')) return r.tag;
  return `${r.tag}(${r.val})`;
}

export const selfPid = () => wit.selfPid();
export const selfName = () => wit.selfName() ?? null;
export const makeRef = () => wit.makeRef();
const initText = (init) => (typeof init === 'string' ? init : JSON.stringify(init ?? null));
export const spawn = (component, init = '', name) => checked('spawn', () => wit.spawn(component, name ?? undefined, initText(init)));
export const spawnLink = (component, init = '', name) => checked('spawn', () => wit.spawnLink(component, name ?? undefined, initText(init)));
export const spawnOn = (node, component, init = '') => checked('spawn', () => wit.spawnOn(node, component, initText(init)));
/** End this particle: `exit()` is normal, `exit('why')` an exception. */
export function exit(reason) {
  wit.exit(none(reason) ? { tag: 'normal' } : typeof reason === 'string' ? { tag: 'exception', val: reason } : reason);
}
export const sendExit = (target, reason = { tag: 'kill' }) => checked('send', () => wit.sendExit(pidOf(target), reason));
export const send = (target, msg, shape) => checked('send', () => wit.send(pidOf(target), codec.shapeOf(msg, shape).encode(msg)));
export const sendTagged = (target, ref, msg, shape) => checked('send', () => wit.sendTagged(pidOf(target), ref, codec.shapeOf(msg, shape).encode(msg)));
/** The oldest message, waiting at most `timeout` seconds (none: forever); null on timeout. */
export const recv = (timeout) => message(wit.recv(ms(timeout)));
export const recvRef = (ref, timeout) => message(wit.recvRef(ref, ms(timeout)));
export const resolve = (text) => wit.resolve(text) ?? null;
export const register = (name) => checked('register', () => wit.register(name));
export const unregister = (name) => checked('unregister', () => wit.unregister(name));
export const lookup = (name) => checked('lookup', () => wit.lookup(name));
/** Erlang's global:register_name: hold `name` in the whole cluster (throws kind 'taken'). */
export const registerGlobal = (name) => checked('register', () => wit.registerGlobal(name));
export const unregisterGlobal = (name) => checked('unregister', () => wit.unregisterGlobal(name));
/** Who holds `name` cluster-wide. */
export const lookupGlobal = (name) => checked('lookup', () => wit.lookupGlobal(name));
export function whereis(name) {
  try { return lookup(name); } catch (e) { if (e.kind === 'not-found') return null; throw e; }
}
/** A pid as given, its printable form, or a registered name. */
export function pidOf(target) {
  if (typeof target !== 'string') return target;
  const pid = target.includes('.') && !target.includes('@') ? wit.resolve(target) : undefined;
  return none(pid) ? lookup(target) : pid;
}
export const link = (target) => checked('link', () => wit.link(pidOf(target)));
export const unlink = (target) => wit.unlink(pidOf(target));
export const monitor = (target) => checked('monitor', () => wit.monitor(pidOf(target)));
export const demonitor = (ref) => wit.demonitor(ref);
export const trapExit = (on) => wit.trapExit(on);
/** A WIT call whose error is a plain string (a Cedar denial). */
function denied(what, f) {
  try {
    return f();
  } catch (e) {
    if (e && typeof e.payload === 'string') throw new PlasmoidError('denied', e.payload, what);
    throw e;
  }
}
/** Erlang's net_kernel:monitor_nodes: `node-up` / `node-down` messages; returns the old setting. */
export const monitorNodes = (on) => denied('monitor-nodes', () => wit.monitorNodes(on));
/** The other nodes connected now, `[{ id, name }]` (Erlang's nodes()). */
export const nodes = () => denied('nodes', () => wit.nodes().map((n) => ({ id: n.id, name: n.name })));
export const sendAfter = (target, seconds, msg, shape) => checked('timer', () => wit.sendAfter(pidOf(target), ms(seconds), codec.shapeOf(msg, shape).encode(msg)));
export const cancelTimer = (ref) => { const left = wit.cancelTimer(ref); return none(left) ? null : Number(left) / 1000; };

/**
 * A gen_server call: the request tagged with a monitor's ref, the answer
 * the tagged reply with that ref, decoded with `reply` (or bytes). Throws
 * PlasmoidError `timeout` or `exit` (the server ended; `detail` says how).
 */
export function call(target, request, { reply, requestShape, timeout = 5 } = {}) {
  const server = pidOf(target);
  const payload = codec.shapeOf(request, requestShape).encode(request);
  const ref = monitor(server);
  try {
    wit.sendTagged(server, ref, payload);
  } catch (e) {
    demonitor(ref);
    const p = e && e.payload;
    if (!p) throw e;
    if (p.tag === 'noproc') throw new PlasmoidError('exit', 'noproc', 'call');
    throw new PlasmoidError('send', none(p.val) ? p.tag : `${p.tag}: ${p.val}`, 'call');
  }
  const m = recvRef(ref, timeout);
  if (m && m.kind === 'tagged') {
    demonitor(ref);
    return (reply ?? codec.raw).decode(m.payload);
  }
  if (m && m.kind === 'down') throw new PlasmoidError('exit', reasonText(m.reason), 'call');
  demonitor(ref);
  throw new PlasmoidError('timeout', `no reply within ${timeout} s`, 'call');
}
export const cast = (target, msg, shape) => send(target, msg, shape);

const log = (level) => (...parts) => wit.log(level, parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join(' '));
export const trace = log('trace'), debug = log('debug'), info = log('info'), warn = log('warn'), error = log('error');

// QuickJS has no console; where there is none, it writes to the log.
if (typeof globalThis.console === 'undefined') {
  globalThis.console = { log: info, info, debug, warn, error, trace };
}

/** Return from handleCast / handleInfo / handleExit to end normally. */
export const STOP = Symbol('stop');

/**
 * Extend it and set the shapes: `static callType`, `castType`, `replyType`
 * (codec shapes; replies made by codec.enumOf carry their own), and
 * `static upgradable = true` to hand the state over on a hot swap.
 */
export class GenServer {
  init(args) {}
  handleCall(request, sender) { throw new Error(`${this.constructor.name} does not take calls`); }
  handleCast(msg) {}
  handleInfo(data) { debug(`${this.constructor.name}: unhandled message of ${data.length} bytes`); }
  handleExit(msg) {}
  handleNode(msg) {}
  handleHttp(request) { return { status: 501, headers: [], body: codec.text.encode('not implemented\n') }; }
  /** The state for the next version (default: own fields as JSON). */
  handoff() { return codec.JSON.encode({ ...this }); }
  /** Take the previous version's state (default: fields from JSON). */
  codeChange(old) { Object.assign(this, codec.JSON.decode(old)); }
}

function decodeInit(init) {
  return init.trim() === '' ? null : JSON.parse(init);
}

const isThenable = (v) => v !== null && typeof v === 'object' && typeof v.then === 'function';
/** What `step` returns when the server is done. */
const DONE = Symbol('done');

/** Handle one message; DONE to end, or a promise of either when a handler is async. */
function step(server, cls, m) {
  if (m.kind === 'tagged') {
    let req = m.payload;
    if (cls.callType) {
      try { req = cls.callType.decode(m.payload); } catch (e) {
        if (e instanceof codec.DecodeError) { warn(`dropping a call that is not a ${cls.callType.name}: ${e.message}`); return undefined; }
        throw e;
      }
    }
    const reply = (answer) => {
      // An answer that cannot be encoded is this server's bug: it throws.
      const body = codec.shapeOf(answer, cls.replyType).encode(answer);
      try { wit.sendTagged(m.sender, m.ref, body); } catch (e) {
        if (!(e && e.payload)) throw e;
        debug('the caller is gone; its reply is dropped');
      }
    };
    const answer = server.handleCall(req, m.sender);
    if (isThenable(answer)) return answer.then(reply);
    reply(answer);
    return undefined;
  }
  const ended = (out) => (out === STOP ? DONE : undefined);
  const after = (out) => (isThenable(out) ? out.then(ended) : ended(out));
  if (m.kind === 'data') {
    let msg;
    let isCast = false;
    if (cls.castType) {
      try { msg = cls.castType.decode(m.payload); isCast = true; } catch (e) { if (!(e instanceof codec.DecodeError)) throw e; }
    }
    return after(isCast ? server.handleCast(msg) : server.handleInfo(m.payload));
  }
  if (m.kind === 'exit' || m.kind === 'down') return after(server.handleExit(m));
  if (m.kind === 'node-up' || m.kind === 'node-down') return after(server.handleNode(m));
  if (m.kind === 'http') {
    const answer = (resp) => {
      try { respond(m.request.ref, resp); } catch (e) { warn(`cannot answer the HTTP request: ${JSON.stringify(e.payload)}`); }
    };
    const resp = server.handleHttp(m.request);
    if (isThenable(resp)) return resp.then(answer);
    answer(resp);
    return undefined;
  }
  if (m.kind === 'upgrade' && cls.upgradable) {
    wit.handoff(server.handoff());
    return DONE;
  }
  return undefined;
}

/**
 * The receive loop. It stays synchronous while the handlers are; the first
 * handler that returns a promise (an `async` one, say around `fetch`) moves
 * it to `loopAsync`, which awaits each such promise before the next message,
 * so messages are still handled one at a time and in order. StarlingMonkey
 * runs its event loop (fetch's I/O) while `start`'s promise is pending;
 * QuickJS would end the particle there, so under it that is an error.
 */
function loop(server, cls) {
  for (;;) {
    const out = step(server, cls, recv());
    if (isThenable(out)) {
      // componentize-qjs ends a sync export when it returns, promise or not.
      if (!bigU64Engine()) throw new Error(`${cls.name}: async handlers need StarlingMonkey (js_engine = "starlingmonkey"); QuickJS does not run an export's promise`);
      return loopAsync(server, cls, out);
    }
    if (out === DONE) return undefined;
  }
}

async function loopAsync(server, cls, pending) {
  if ((await pending) === DONE) return;
  for (;;) {
    let out = step(server, cls, recv());
    if (isThenable(out)) out = await out;
    if (out === DONE) return;
  }
}

/** Why the particle ends: the error and its stack, bounded. */
function failure(e) {
  const text = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}`.trim() : String(e);
  error(`uncaught: ${text}`);
  return text.length > 1500 ? text.slice(0, 1500) + '…' : text;
}

/** Run `body(init)`; an exception (or a rejected promise) ends the particle with its stack as the reason. */
function run(body, init) {
  let out;
  try {
    out = body(init);
  } catch (e) {
    throw failure(e);
  }
  if (isThenable(out)) return out.then(() => undefined, (e) => { throw failure(e); });
  return undefined;
}

/** The component's `start` for a GenServer class: `export const start = serve(Counter);` */
export function serve(cls) {
  return (init) => run((i) => {
    const server = new cls();
    const old = wit.takeHandoff();
    if (!none(old)) server.codeChange(bytesOf(old));
    else server.init(decodeInit(i));
    if (cls.upgradable) wit.setUpgradable(true);
    return loop(server, cls);
  }, init);
}

/** The component's `start` for a plain function of the init args. */
export function main(fn) {
  return (init) => run((i) => fn(decodeInit(i)), init);
}
