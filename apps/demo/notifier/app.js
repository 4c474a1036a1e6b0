// Notifier: tells the payee about each settled order, in JavaScript
// (StarlingMonkey, componentize-js's default engine). It subscribes to the
// ledger when it starts (so it depends on the ledger, and its supervisor is
// rest-for-one: a new ledger needs a new subscription), and it crashes now
// and then on purpose (`crash_every`) so the supervisors visibly work.
//
// With `webhook = "http://…"` in its init it also POSTs each notification,
// as JSON, to that URL with `fetch` (wasi:http's outgoing handler). It is
// off by default, and the release's policy must permit `connect` to the
// webhook's host; a failed or denied post is a warning, and the
// notification counts as sent all the same. The messages are shop-proto's
// (apps/demo/shop-proto), postcard-encoded as the Rust ledger does.
import * as plasmoid from 'plasmoid';
import { codec, GenServer } from 'plasmoid';

const LEDGER = 'ledger';
// shop-proto: struct Order { id: u64, gateway: String, from: String, to: String, amount: u64 }
const Order = codec.struct('Order', {
  id: codec.u64, gateway: codec.string, from: codec.string, to: codec.string, amount: codec.u64,
});
// shop-proto: enum LedgerCast { Subscribe(String) }
const LedgerCast = codec.enumOf('LedgerCast', { Subscribe: codec.string });
// How long a webhook may take, all told (the runtime bounds every outgoing
// request too: 10 s to connect, 30 s between bytes).
const WEBHOOK_TIMEOUT_MS = 5000;
const timeout = (ms) => (typeof AbortSignal !== 'undefined' && AbortSignal.timeout ? AbortSignal.timeout(ms) : undefined);

class Notifier extends GenServer {
  static callType = codec.unit; // any call: how many were sent
  static castType = Order; // shop-proto's `Notify(Order)`, a newtype: an Order's bytes
  static replyType = codec.u64;

  init(args) {
    const a = args ?? {};
    this.crashEvery = Number(a.crash_every ?? 0);
    this.webhook = a.webhook ? String(a.webhook) : null;
    this.sent = 0;
    const ledger = plasmoid.whereis(LEDGER);
    if (ledger === null) throw new Error('the ledger is not running');
    plasmoid.cast(ledger, LedgerCast.Subscribe(plasmoid.selfPid().toString()));
    plasmoid.info('notifier subscribed to the ledger');
  }

  handleCall() {
    return this.sent;
  }

  // Async only when there is a webhook to wait for; the SDK awaits it
  // before the next message.
  handleCast(order) {
    if (this.crashEvery > 0 && this.sent + 1 === this.crashEvery) {
      // A bug on purpose: the supervisor restarts us within a millisecond.
      throw new Error(`notifier tripped over order #${order.id} of ${order.gateway} (simulated bug)`);
    }
    this.sent += 1;
    if (this.sent % 10 === 0) {
      plasmoid.info(`notified ${order.to} of ${order.amount} received (order #${order.id}, ${this.sent} sent)`);
    }
    if (this.webhook !== null) return this.post(order);
    return undefined;
  }

  async post(order) {
    const body = JSON.stringify({
      order: Number(order.id), gateway: order.gateway, from: order.from, to: order.to, amount: Number(order.amount),
    });
    try {
      const resp = await fetch(this.webhook, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body,
        signal: timeout(WEBHOOK_TIMEOUT_MS),
      });
      if (!resp.ok) plasmoid.warn(`webhook ${this.webhook}: answered ${resp.status}`);
      await resp.arrayBuffer(); // finish the exchange
    } catch (e) {
      plasmoid.warn(`webhook ${this.webhook}: ${e && e.message ? e.message : e}`);
    }
  }
}

export const start = plasmoid.serve(Notifier);
