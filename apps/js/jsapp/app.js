// A JavaScript particle for the tests and benches, one role per init args
// (as apps/py/pyapp): `{"role": "counter", "start": 5, "name": "jscounter"}`
// speaks the Rust counter's protocol (apps/counter-proto) and hands its state
// to the next version; `"echo"` answers a postcard Vec<u8> with itself;
// `{"role": "relay", "to": "counter"}` forwards counter calls to `to`;
// `{"role": "stored", "bucket": "app"}` is a counter kept in the store
// (as pyapp's); `"async"` answers each call after an awaited promise (the
// SDK's asynchronous loop); `"idle"` waits in recv.
import * as plasmoid from 'plasmoid';
import { codec, GenServer, STOP, store } from 'plasmoid';

const VERSION = 1;

const CounterRequest = codec.enumOf('CounterRequest', { Get: null, Increment: null, Add: codec.u64, Version: null });
const CounterCast = codec.enumOf('CounterCast', { Increment: null, Add: codec.u64 });

class Counter extends GenServer {
  static callType = CounterRequest;
  static castType = CounterCast;
  static replyType = codec.u64;
  static upgradable = true;

  init(args) {
    this.value = args.start ?? 0;
    if (args.name) plasmoid.register(args.name);
    plasmoid.info(`counter v${VERSION} starts at ${this.value}`);
  }

  handleCall(req) {
    switch (req.tag) {
      case 'Version': return VERSION;
      case 'Increment': this.value += 1; break;
      case 'Add': this.value += Number(req.value); break;
    }
    return this.value;
  }

  handleCast(msg) {
    this.value += msg.tag === 'Add' ? Number(msg.value) : 1;
  }

  handleInfo(data) {
    const text = codec.text.decode(data);
    if (text === 'crash') throw new TypeError(`cannot count past ${this.value}`);
    if (text === 'stop') return STOP;
  }
}

class Echo extends GenServer {
  static callType = codec.bytes;
  static replyType = codec.bytes;
  handleCall(req) { return req; }
}

class Relay extends GenServer {
  static callType = CounterRequest;
  static replyType = codec.u64;
  init(args) { this.to = args.to; }
  handleCall(req) { return plasmoid.call(this.to, req, { reply: codec.u64 }); }
}

class Stored extends GenServer {
  static callType = CounterRequest;
  static replyType = codec.u64;
  init(args) { this.bucket = args.bucket ?? 'app'; }
  handleCall(req) {
    const b = this.bucket;
    switch (req.tag) {
      case 'Add': {
        const v = store.update(b, 'count', (old) => Number(old ?? 0) + Number(req.value), codec.u64);
        store.setMany(b, { [`log/${v}`]: codec.string.encode(`+${req.value}`) });
        return v;
      }
      case 'Increment': return store.increment(b, 'hits');
      case 'Version': return store.keys(b).length;
      default: return store.get(b, 'count', codec.u64) ?? 0;
    }
  }
}

// A counter whose every handler is async: the SDK's loop awaits each.
class AsyncCounter extends GenServer {
  static callType = CounterRequest;
  static castType = CounterCast;
  static replyType = codec.u64;
  init(args) { this.value = args.start ?? 0; }
  async handleCall(req) {
    await Promise.resolve();
    if (req.tag === 'Add') this.value += Number(req.value);
    return this.value;
  }
  async handleCast(msg) {
    await null;
    this.value += msg.tag === 'Add' ? Number(msg.value) : 1;
  }
  async handleInfo(data) {
    await null;
    if (codec.text.decode(data) === 'crash') throw new RangeError(`async handler gave up at ${this.value}`);
  }
}

const roles = {
  counter: plasmoid.serve(Counter),
  echo: plasmoid.serve(Echo),
  relay: plasmoid.serve(Relay),
  stored: plasmoid.serve(Stored),
  async: plasmoid.serve(AsyncCounter),
  idle: plasmoid.main(() => { for (;;) plasmoid.recv(); }),
};

export function start(init) {
  const args = init.trim() === '' ? 'idle' : JSON.parse(init);
  const role = typeof args === 'string' ? args : args.role ?? 'counter';
  if (!roles[role]) throw `unknown role ${role}; one of ${Object.keys(roles).join(', ')}`;
  return roles[role](init);
}
