// The Plasmoid observer's page: one EventSource for the live samples (the
// server sorts, filters and limits the particle table), fetches for the
// history, a particle's details and the actions. No libraries: it is
// served from the node's binary and works offline.
'use strict';

const $ = (s) => document.querySelector(s);
const SVG = 'http://www.w3.org/2000/svg';
const view = { sort: 'mailbox', dir: 'desc', filter: '', limit: 100 };
let es = null;
let points = [];
let selected = null;
// The child id of the selected particle: when it is restarted under a new
// pid, the details follow the child (as observer's process window does not).
let selectedChild = null;
let canAct = false;
let last = null;

function el(tag, attrs, text) {
  const e = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  if (text !== undefined) e.textContent = text;
  return e;
}

function bytes(n) {
  if (n >= 1 << 30) return (n / (1 << 30)).toFixed(1) + ' GiB';
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + ' MiB';
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(0) + ' KiB';
  return n + ' B';
}

function duration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString();
}

function rate(x) {
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

function toast(text, bad) {
  const t = $('#toast');
  t.textContent = text;
  t.className = bad ? 'bad' : '';
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.add('hidden'), 6000);
}

// ---- the live stream ----

function connect() {
  if (es) es.close();
  const q = new URLSearchParams({ sort: view.sort, dir: view.dir, filter: view.filter, limit: view.limit });
  es = new EventSource('/api/events?' + q.toString());
  es.addEventListener('sample', (e) => {
    $('#conn').textContent = 'live';
    $('#conn').className = 'pill ok';
    onSample(JSON.parse(e.data));
  });
  const mine = es;
  es.onerror = () => {
    $('#conn').textContent = 'reconnecting…';
    $('#conn').className = 'pill bad';
    // A refusal (503: too many pages; 401) closes the stream for good:
    // try again later rather than show "reconnecting" forever.
    if (mine.readyState === EventSource.CLOSED) {
      setTimeout(() => { if (es === mine) connect(); }, 3000);
    }
  };
}

function onSample(s) {
  last = s;
  $('#release').textContent = s.release;
  $('#node').textContent = (s.node || 'node') + ' ' + s.node_id.slice(0, 8);
  $('#uptime').textContent = duration(s.uptime_ms);
  $('#alive').textContent = s.alive;
  $('#rate').textContent = rate(s.point.msgs_per_s);
  $('#http').textContent = rate(s.point.http_per_s);
  if (!points.length || points[points.length - 1].at_ms < s.point.at_ms) {
    points.push(s.point);
    if (points.length > 2400) points.shift();
  }
  drawTree(s.tree, s.at_ms);
  drawParticles(s);
  drawPeers(s);
  drawEvents(s.events);
  drawCharts();
  if (selected) loadDetail(selected);
}

// ---- tree ----

function layout(node, depth, next, out) {
  const kids = node.children || [];
  let x;
  if (!kids.length) {
    x = next.leaf++;
  } else {
    const xs = kids.map((c) => layout(c, depth + 1, next, out));
    x = (xs[0] + xs[xs.length - 1]) / 2;
  }
  out.push({ node, depth, x });
  node._x = x;
  node._y = depth;
  return x;
}

function drawTree(tree, now) {
  const svg = $('#tree');
  svg.replaceChildren();
  $('#no-tree').classList.toggle('hidden', !!tree);
  if (!tree) return;
  const W = 200, H = 120, BW = 180, BH = 78;
  const placed = [];
  const next = { leaf: 0 };
  layout(tree, 0, next, placed);
  const depth = Math.max(...placed.map((p) => p.depth)) + 1;
  svg.setAttribute('width', Math.max(1, next.leaf) * W + 20);
  svg.setAttribute('height', depth * H + 20);
  const pos = (n) => [10 + n._x * W + (W - BW) / 2, 10 + n._y * H];
  for (const p of placed) {
    for (const c of p.node.children || []) {
      const [px, py] = pos(p.node);
      const [cx, cy] = pos(c);
      const d = `M${px + BW / 2},${py + BH} C${px + BW / 2},${py + BH + 20} ${cx + BW / 2},${cy - 20} ${cx + BW / 2},${cy}`;
      svg.appendChild(el('svg:path', { d, class: 'edge' }));
    }
  }
  for (const p of placed) {
    const n = p.node;
    const [x, y] = pos(n);
    const recent = n.restarted_at && now - n.restarted_at < 5000;
    const cls = ['tnode', n.strategy ? 'sup' : 'worker', 'state-' + n.state, recent ? 'flash' : ''].join(' ');
    const g = el('svg:g', {
      class: cls, transform: `translate(${x},${y})`,
      'data-id': n.id, 'data-pid': n.pid || '', 'data-restarts': n.restarts, 'data-state': n.state,
    });
    g.appendChild(el('svg:rect', { width: BW, height: BH, rx: 6 }));
    const lines = [
      [n.id, 'title'],
      [(n.pid || '—') + (n.node ? ' · ' + n.node : ''), ''],
      [n.strategy ? n.strategy : (n.component || '') + (n.version ? ' @' + n.version.slice(0, 8) : ''), ''],
      [`restarts ${n.restarts} · ${n.state}`, 'restarts'],
    ];
    lines.forEach(([t, c], i) => g.appendChild(el('svg:text', { x: 8, y: 18 + i * 17, class: c }, t)));
    if (n.pid && !n.strategy) g.addEventListener('click', () => openDetail(n.pid));
    svg.appendChild(g);
  }
}

// ---- particles ----

function drawParticles(s) {
  const body = $('#particles tbody');
  body.replaceChildren();
  for (const r of s.particles) {
    const tr = el('tr', { 'data-pid': r.pid, class: r.native ? 'native' : '' });
    const cells = [
      [r.pid, 'pid'], [r.name || '', 'name'], [r.child || '', 'child'], [r.component, 'component'],
      [r.version ? r.version.slice(0, 8) : (r.native ? 'native' : ''), 'version'],
      [r.mailbox, 'mailbox num'], [bytes(r.memory), 'memory num'], [r.ticks_per_interval, 'cpu num'],
      [r.ticks, 'ticks num'], [rate(r.in_per_s), 'in num'], [rate(r.out_per_s), 'out num'],
      [r.restarts, 'restarts num'], [r.links, 'links num'],
    ];
    for (const [t, c] of cells) tr.appendChild(el('td', { class: c }, String(t)));
    tr.addEventListener('click', () => openDetail(r.pid));
    body.appendChild(tr);
  }
  $('#shown').textContent = `${s.particles.length} shown of ${s.matched} matching, ${s.total} processes`;
  for (const th of document.querySelectorAll('#particles th[data-sort]')) {
    const on = th.dataset.sort === s.sort;
    th.classList.toggle('sorted', on);
    th.dataset.dir = on ? s.dir : '';
  }
}

for (const th of document.querySelectorAll('#particles th[data-sort]')) {
  th.addEventListener('click', () => {
    const col = th.dataset.sort;
    if (view.sort === col) {
      view.dir = view.dir === 'desc' ? 'asc' : 'desc';
    } else {
      view.sort = col;
      view.dir = ['pid', 'name', 'child', 'component'].includes(col) ? 'asc' : 'desc';
    }
    connect();
  });
}

$('#filter').addEventListener('input', () => {
  clearTimeout(connect.timer);
  connect.timer = setTimeout(() => {
    view.filter = $('#filter').value;
    connect();
  }, 250);
});

$('#limit').addEventListener('change', () => {
  view.limit = Number($('#limit').value);
  connect();
});

// ---- nodes ----

function drawPeers(s) {
  $('#self-node').textContent = `This node: ${s.node || '(unnamed)'} ${s.node_id}`;
  const body = $('#peers tbody');
  body.replaceChildren();
  $('#no-peers').classList.toggle('hidden', s.peers.length > 0);
  for (const p of s.peers) {
    const tr = el('tr', { 'data-peer': p.name || p.id });
    const cells = [
      p.name, p.id.slice(0, 16), p.connected ? 'connected' : 'down',
      p.rtt_ms === null ? '' : p.rtt_ms.toFixed(2), bytes(p.bytes_sent), bytes(p.bytes_received),
      p.remote_links, p.remote_monitors,
    ];
    cells.forEach((t, i) => tr.appendChild(el('td', { class: i >= 3 ? 'num' : (i === 2 ? (p.connected ? 'ok' : 'bad') : '') }, String(t))));
    body.appendChild(tr);
  }
}

// ---- history ----

function drawEvents(events) {
  const ol = $('#events');
  ol.replaceChildren();
  for (const e of events.slice().reverse()) {
    const li = el('li', { class: 'ev-' + e.kind.replace(' ', '-') });
    li.appendChild(el('time', {}, clock(e.at_ms)));
    li.appendChild(el('span', { class: 'kind' }, e.kind));
    li.appendChild(el('span', {}, e.text));
    ol.appendChild(li);
  }
}

function chart(id, label, values, fmt) {
  const svg = $('#chart-' + id);
  svg.replaceChildren();
  const max = Math.max(1, ...values);
  const n = values.length;
  if (n > 1) {
    const pts = values.map((v, i) => `${(i / (n - 1)) * 300},${78 - (v / max) * 74}`).join(' ');
    svg.appendChild(el('svg:polyline', { points: pts, class: 'line' }));
  }
  $('#c-' + label).textContent = n ? fmt(values[n - 1]) : '';
}

function drawCharts() {
  const recent = points.slice(-600);
  chart('msgs', 'msgs', recent.map((p) => p.msgs_per_s), rate);
  chart('alive', 'alive', recent.map((p) => p.alive), String);
  chart('memory', 'memory', recent.map((p) => p.memory), bytes);
  chart('http', 'http', recent.map((p) => p.http_per_s), rate);
}

// ---- a particle ----

function findChild(tree, id) {
  if (!tree) return null;
  if (tree.id === id && !tree.strategy) return tree;
  for (const c of tree.children || []) {
    const f = findChild(c, id);
    if (f) return f;
  }
  return null;
}

function openDetail(pid) {
  selected = pid;
  selectedChild = null;
  $('#detail').classList.remove('hidden');
  loadDetail(pid);
}

async function loadDetail(pid) {
  const r = await fetch('/api/particle/' + encodeURIComponent(pid));
  if (selected !== pid) return;
  const again = !r.ok && selectedChild && last && findChild(last.tree, selectedChild);
  if (again && again.pid && again.pid !== pid) {
    selected = again.pid;
    return loadDetail(again.pid);
  }
  if (!r.ok) {
    $('#detail-title').textContent = pid;
    $('#detail-body').replaceChildren(el('dd', {}, await r.text()));
    $('#kill').disabled = true;
    $('#restart').disabled = true;
    return;
  }
  const d = await r.json();
  $('#detail-title').textContent = (d.name || d.component) + ' ' + d.pid;
  const dl = $('#detail-body');
  dl.replaceChildren();
  const place = d.place || {};
  selectedChild = place.child || null;
  const rows = [
    ['component', d.component + (d.version ? ' @' + d.version : '')],
    ['registered as', d.name || '—'],
    ['supervisor', place.supervisor ? `${place.supervisor} (${place.supervisor_pid}, ${place.strategy})` : '—'],
    ['child', place.child ? `${place.child}: ${place.restart}, ${place.restarts} restarts` : 'not a supervised child'],
    ['mailbox', d.mailbox], ['memory', bytes(d.memory)], ['cpu ticks', d.ticks],
    ['messages in / out', `${d.received} / ${d.sent}`], ['traps exits', d.trap_exit ? 'yes' : 'no'],
    ['links', d.links.join(', ') || '—'], ['monitors', d.monitors.join(', ') || '—'],
    ['monitored by', d.monitored_by.join(', ') || '—'],
  ];
  for (const [k, v] of rows) {
    dl.appendChild(el('dt', {}, k));
    dl.appendChild(el('dd', { 'data-field': k }, String(v)));
  }
  $('#kill').disabled = !canAct;
  // A temporary child (or a simple-one-for-one instance) would be deleted
  // by terminate_child, not restarted.
  $('#restart').disabled = !canAct || !place.child || place.restart === 'temporary'
    || place.strategy === 'simple-one-for-one';
  const list = (id, items, text) => {
    const ol = $(id);
    ol.replaceChildren();
    if (!items.length) ol.appendChild(el('li', { class: 'hint' }, 'none'));
    for (const i of items) ol.appendChild(el('li', {}, clock(i.at_ms) + ' ' + text(i)));
  };
  list('#detail-exits', d.exits, (e) => `${e.pid}: ${e.reason}`);
  list('#detail-denials', d.denials, (x) => `${x.action} ${x.resource}` + (x.count > 1 ? ` (×${x.count})` : ''));
}

$('#detail-close').addEventListener('click', () => {
  selected = null;
  $('#detail').classList.add('hidden');
});

// ---- actions, each confirmed first ----

function confirmThen(text, action) {
  $('#confirm-text').textContent = text;
  $('#confirm').classList.remove('hidden');
  $('#confirm-yes').onclick = async () => {
    $('#confirm').classList.add('hidden');
    await action();
  };
  $('#confirm-no').onclick = () => $('#confirm').classList.add('hidden');
}

async function act(path, body, type) {
  try {
    const r = await fetch('/api/action/' + path, {
      method: 'POST',
      headers: { 'content-type': type || 'application/json', 'x-plasmoid-action': '1' },
      body,
    });
    const text = await r.text();
    let msg = text;
    try { msg = JSON.parse(text).message; } catch (_) { /* plain text */ }
    toast(msg, !r.ok);
  } catch (e) {
    toast('the action did not reach the node: ' + e, true);
  }
}

$('#kill').addEventListener('click', () => {
  const pid = selected;
  confirmThen(`Kill ${pid}? Its supervisor restarts it per its restart policy.`,
    () => act('kill', JSON.stringify({ target: pid })));
});

$('#restart').addEventListener('click', () => {
  const pid = selected;
  confirmThen(`Restart the child running as ${pid}? It is stopped within its shutdown time and started again.`,
    () => act('restart', JSON.stringify({ target: pid })));
});

$('#swap-go').addEventListener('click', () => {
  const component = $('#swap-component').value;
  const file = $('#swap-file').files[0];
  if (!component || !file) {
    toast('pick a component and a .wasm file first', true);
    return;
  }
  confirmThen(`Hot-swap ${component} with ${file.name} (${bytes(file.size)})?`, async () => {
    const data = await file.arrayBuffer();
    await act('swap?component=' + encodeURIComponent(component), data, 'application/wasm');
  });
});

// ---- tabs and start ----

for (const b of document.querySelectorAll('nav button')) {
  b.addEventListener('click', () => {
    for (const o of document.querySelectorAll('nav button')) o.classList.toggle('active', o === b);
    for (const t of document.querySelectorAll('.tab')) t.classList.toggle('hidden', t.id !== 'tab-' + b.dataset.tab);
  });
}

async function start() {
  try {
    const who = await (await fetch('/api/whoami')).json();
    canAct = who.can_act;
    $('#mode').textContent = canAct ? 'actions enabled' : 'read-only (open with `plasmoid observe` to act)';
    $('#mode').className = 'pill ' + (canAct ? 'ok' : '');
    for (const c of who.components) $('#swap-component').appendChild(el('option', { value: c }, c));
    $('#swap-go').disabled = !canAct;
    const h = await (await fetch('/api/history')).json();
    points = h.points;
  } catch (e) {
    toast('cannot reach the node: ' + e, true);
  }
  connect();
}

start();
