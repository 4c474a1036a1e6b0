// Process groups, as Erlang's `pg`: `join` a named group, and `members`
// lists every member on every connected node; `broadcast` sends one message
// to all of them. Membership is eventually consistent across nodes; a
// particle leaves its groups when it ends.

import * as wit from 'plasmoid:runtime/pg@0.1.0';
import { selfPid, send as witSend } from 'plasmoid:runtime/process@0.1.0';
import * as codec from './codec.js';

function refused(f) {
  try {
    return f();
  } catch (e) {
    if (e && typeof e.payload === 'string') {
      const err = new Error(`refused: ${e.payload}`);
      err.kind = 'refused';
      throw err;
    }
    throw e;
  }
}

/** Join `group`; true if this particle was not in it yet. */
export const join = (group) => refused(() => wit.join(group));
/** Leave `group`; whether this particle was in it. */
export const leave = (group) => wit.leave(group);
/** Every member of `group`, on this node and the connected ones. */
export const members = (group) => wit.members(group);
/** The members of `group` on this node. */
export const localMembers = (group) => wit.localMembers(group);
/** The groups with at least one member in the cluster. */
export const whichGroups = () => wit.whichGroups();

/**
 * Send `msg` to every member of `group` but this particle; returns how many
 * sends were accepted (best effort, as in Erlang).
 */
export function broadcast(group, msg, shape) {
  const me = selfPid();
  const bytes = msg instanceof Uint8Array ? msg : codec.shapeOf(msg, shape).encode(msg);
  let sent = 0;
  for (const p of wit.members(group)) {
    if (p.equals(me)) continue;
    try {
      witSend(p, bytes);
      sent += 1;
    } catch (_) {
      // gone or full: skipped
    }
  }
  return sent;
}
