// The streamfold dashboard: polls /ui/api/status every two seconds and
// draws what runs. No library, no build step; text goes into the page as
// text (textContent), never as markup.
'use strict';

(() => {
  const TOKEN_KEY = 'streamfold-admin-token';
  const POLL_MS = 2000;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const state = {
    access: 'open',
    self: null,
    topology: null,
    groupSet: new Set(),
    prev: null, // the last status, for rates
    dlqGroup: '',
    dlqSeen: '',
    parkedSeen: '',
    list: null, // the last listing: {path, next}
    pending: null, // the dead letter the dialog asks about
    started: false,
  };

  const $ = (id) => document.getElementById(id);

  // el builds an element; children are nodes or text.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function sv(tag, attrs, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    setAttrs(e, attrs);
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.setAttribute('class', v);
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function fmt(n) {
    return typeof n === 'number' ? n.toLocaleString('en-US') : '–';
  }

  class HTTPError extends Error {
    constructor(status, body) {
      const detail = body && typeof body === 'object' ? (body.detail || body.title) : body;
      super(detail ? `${status}: ${detail}` : `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  // call fetches path and decodes its JSON; admin calls carry the token.
  async function call(path, opts = {}) {
    const headers = new Headers({ Accept: 'application/json' });
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (opts.admin && token) headers.set('Authorization', 'Bearer ' + token);
    const init = { method: opts.method || 'GET', headers, cache: 'no-store', credentials: 'same-origin' };
    if (opts.body !== undefined) {
      headers.set('Content-Type', 'application/json');
      init.body = JSON.stringify(opts.body);
    }
    const resp = await fetch(path, init);
    const text = await resp.text();
    let body = null;
    if (text) {
      try { body = JSON.parse(text); } catch (e) { body = text; }
    }
    if (!resp.ok) {
      const err = new HTTPError(resp.status, body);
      if (opts.admin && resp.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        askToken('The admin token was refused: ' + err.message);
      }
      throw err;
    }
    return body;
  }

  const admin = (path, opts = {}) => call(path, Object.assign({ admin: true }, opts));

  function askToken(why) {
    $('auth-why').textContent = why;
    $('auth').hidden = false;
    $('auth-token').focus();
  }

  function say(id, text, bad) {
    const m = $(id);
    m.textContent = text;
    m.classList.toggle('bad', !!bad);
  }

  // ---- start ----

  async function start() {
    $('auth-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const v = $('auth-token').value.trim();
      if (!v) return;
      sessionStorage.setItem(TOKEN_KEY, v);
      $('auth-token').value = '';
      $('auth').hidden = true;
      begin();
    });
    $('dlq-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      state.dlqGroup = $('dlq-group').value;
      state.dlqSeen = state.parkedSeen = '';
      say('dlq-message', '');
      refreshDLQ();
    });
    $('lookup-form').addEventListener('submit', (ev) => { ev.preventDefault(); lookup(); });
    $('list-form').addEventListener('submit', (ev) => { ev.preventDefault(); list(false); });
    $('list-next').addEventListener('click', () => list(true));
    $('list-resource').addEventListener('change', fillFilters);
    $('redrive-dialog').addEventListener('close', redriveClosed);
    $('show-internal').addEventListener('change', () => { if (state.topology) drawTopology(state.topology); });

    try {
      const acc = await call('/ui/api/access');
      state.access = acc.operator;
      if (acc.operator === 'disabled') {
        say('status', 'Operator information is disabled: this instance listens beyond loopback and has no admin token' +
          (acc.hint ? ` (${acc.hint})` : '') + '.', true);
        return;
      }
      if (acc.operator === 'token' && !sessionStorage.getItem(TOKEN_KEY)) {
        askToken('This instance asks for its admin token' + (acc.hint ? ` (${acc.hint})` : '') +
          ' to show operator information. It is kept in this tab only.');
        say('status', 'Waiting for the admin token.');
        return;
      }
    } catch (e) {
      say('status', 'Cannot reach the instance: ' + e.message, true);
      return;
    }
    begin();
  }

  // begin loads what does not change, then polls what does.
  async function begin() {
    try {
      const [topo, info, res] = await Promise.all([
        admin('/ui/api/topology'), admin('/ui/api/info'), admin('/ui/api/resources'),
      ]);
      state.topology = topo;
      state.groupSet = new Set(topo.groups);
      state.self = info.self;
      drawTopology(topo);
      drawInfo(info);
      fillBrowser(res);
      fillGroups(topo.groups);
    } catch (e) {
      say('status', 'Cannot load the dashboard: ' + e.message, true);
      return;
    }
    if (!state.started) {
      state.started = true;
      poll();
    }
  }

  async function poll() {
    try {
      const st = await admin('/ui/api/status');
      drawStatus(st);
      if (state.dlqGroup) await refreshDLQ();
    } catch (e) {
      say('status', 'Last poll failed: ' + e.message, true);
    }
    setTimeout(poll, POLL_MS);
  }

  // ---- topology ----

  // internalTopic: a topic only its one group writes and reads (retries,
  // loops, seen ids, windows) or that nobody reads (dead letters, late
  // records), except its table. Hidden unless asked for: they triple the graph.
  function internalTopic(t) {
    const w = t.writers || [], r = t.readers || [];
    if (w.length !== 1 || !state.groupSet.has(w[0]) || r.some((x) => x !== w[0])) return false;
    if (t.kind === 'table') return /-(dlq-state|bootstrap)$/.test(t.name);
    return true;
  }

  function drawTopology(topo) {
    const show = $('show-internal').checked;
    const hidden = new Map(); // group -> count of its internal topics not drawn
    const topics = topo.topics.filter((t) => {
      if (show || !internalTopic(t)) return true;
      hidden.set(t.writers[0], (hidden.get(t.writers[0]) || 0) + 1);
      return false;
    });
    const nodes = new Map(); // id -> {id, name, kind, sub, topic}
    const edges = []; // {from, to, self}
    const topicNode = (t) => 't:' + t.name;
    const procNode = (name) => {
      const id = 'p:' + name;
      if (!nodes.has(id)) {
        const group = state.groupSet.has(name);
        const n = hidden.get(name);
        const sub = group ? (n ? `group, +${n} internal topics` : 'group') : 'outside the groups';
        nodes.set(id, { id, name, kind: group ? 'group' : 'external', sub });
      }
      return id;
    };
    for (const t of topics) {
      const kind = t.kind === 'table' ? 'table' : 'stream';
      nodes.set(topicNode(t), { id: topicNode(t), name: t.name, kind, topic: true, sub: `${kind}, ${t.partitions} partitions` });
    }
    for (const t of topics) {
      const writers = t.writers || [];
      const readers = t.readers || [];
      for (const w of writers) edges.push({ from: procNode(w), to: topicNode(t), self: false });
      for (const r of readers) {
        // A group that reads what it writes (loop, retry topics): drawn
        // as a dashed return edge, left out of the layering.
        edges.push({ from: topicNode(t), to: procNode(r), self: writers.includes(r) });
      }
    }
    const layer = layers(nodes, edges);
    const order = orderLayers(nodes, edges, layer);
    const charW = 7, nodeH = 38, gapY = 10, gapX = 70, padX = 16, padY = 16;
    const width = (n) => Math.max(n.name.length, n.sub.length) * charW + 20;
    const colW = order.map((col) => Math.max(80, ...col.map((id) => width(nodes.get(id)))));
    const colX = [];
    let x = padX;
    for (const w of colW) { colX.push(x); x += w + gapX; }
    const pos = new Map();
    let maxY = 0;
    order.forEach((col, i) => {
      col.forEach((id, j) => {
        const y = padY + j * (nodeH + gapY);
        pos.set(id, { x: colX[i], y, w: colW[i], h: nodeH });
        maxY = Math.max(maxY, y + nodeH);
      });
    });
    const svg = $('graph');
    const title = svg.querySelector('title');
    svg.replaceChildren(title);
    const W = x - gapX + padX, H = maxY + padY;
    svg.setAttribute('width', W);
    svg.setAttribute('height', H);
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    title.textContent = `Topology graph: ${topics.length} of ${topo.topics.length} topics, ${topo.groups.length} groups. The table below lists every topic.`;
    svg.append(sv('defs', {}, sv('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      sv('path', { d: 'M0,0 L10,5 L0,10 z' }))));
    const edgeG = sv('g', { class: 'edges' });
    svg.append(edgeG);
    for (const e of edges) {
      const a = pos.get(e.from), b = pos.get(e.to);
      const sx = a.x + a.w, sy = a.y + a.h / 2;
      const tx = b.x, ty = b.y + b.h / 2;
      let d;
      if (tx > sx) {
        const c = Math.max(30, (tx - sx) / 2);
        d = `M${sx},${sy} C${sx + c},${sy} ${tx - c},${ty} ${tx},${ty}`;
      } else {
        // Backwards: leave right, come round below, enter from the left.
        const low = Math.max(a.y + a.h, b.y + b.h) + 14;
        d = `M${sx},${sy} C${sx + 40},${sy} ${sx + 40},${low} ${(sx + tx) / 2},${low} S${tx - 40},${ty} ${tx},${ty}`;
      }
      edgeG.append(sv('path', { class: 'edge' + (e.self ? ' self' : ''), d, 'marker-end': 'url(#arrow)', 'data-from': e.from, 'data-to': e.to }));
    }
    const nodeG = sv('g', { class: 'nodes' });
    svg.append(nodeG);
    for (const [id, n] of nodes) {
      const p = pos.get(id);
      const g = sv('g', { class: 'node ' + n.kind, 'data-id': id, 'data-name': n.name, 'data-kind': n.kind, 'data-topic': n.topic ? n.name : null,
        transform: `translate(${p.x},${p.y})` });
      g.append(sv('title', { text: `${n.name} (${n.sub})` }));
      const rx = n.kind === 'group' ? 12 : 2;
      g.append(sv('rect', { width: p.w, height: p.h, rx }));
      if (n.kind === 'table') g.append(sv('rect', { class: 'inner', x: 3, y: 3, width: p.w - 6, height: p.h - 6, rx: 1 }));
      g.append(sv('text', { x: 10, y: 16, text: n.name }));
      g.append(sv('text', { class: 'sub', x: 10, y: 30, text: n.sub }));
      g.addEventListener('mouseenter', () => highlight(id, edges));
      g.addEventListener('mouseleave', () => highlight(null, edges));
      nodeG.append(g);
    }
    // The same as a table, for reading and for screen readers.
    const body = $('topics-table').tBodies[0];
    body.replaceChildren(...topo.topics.map((t) => el('tr', {},
      el('td', { class: 'mono' }, t.name), el('td', {}, t.kind), el('td', { class: 'num' }, t.partitions),
      el('td', {}, (t.writers || []).join(', ') || '–'), el('td', {}, (t.readers || []).join(', ') || '–'))));
  }

  function highlight(id, edges) {
    const svg = $('graph');
    const near = new Set([id]);
    for (const e of edges) {
      if (e.from === id) near.add(e.to);
      if (e.to === id) near.add(e.from);
    }
    for (const g of svg.querySelectorAll('.node')) g.classList.toggle('dim', id !== null && !near.has(g.dataset.id));
    for (const p of svg.querySelectorAll('.edge')) p.classList.toggle('dim', id !== null && p.dataset.from !== id && p.dataset.to !== id);
  }

  // layers ranks each node by the longest path from a source, over the
  // edges without the return edges and without those closing a cycle.
  function layers(nodes, edges) {
    const out = new Map();
    for (const id of nodes.keys()) out.set(id, []);
    for (const e of edges) if (!e.self) out.get(e.from).push(e.to);
    const back = new Set();
    const mark = new Map(); // 1 on the stack, 2 done
    const visit = (id) => {
      mark.set(id, 1);
      for (const to of out.get(id)) {
        if (mark.get(to) === 1) back.add(id + '\u0000' + to);
        else if (!mark.has(to)) visit(to);
      }
      mark.set(id, 2);
    };
    const ids = [...nodes.keys()].sort();
    // Start from sources so that cycles are cut where data comes back.
    const hasIn = new Set();
    for (const e of edges) if (!e.self) hasIn.add(e.to);
    for (const id of ids) if (!hasIn.has(id) && !mark.has(id)) visit(id);
    for (const id of ids) if (!mark.has(id)) visit(id);
    const rank = new Map(ids.map((id) => [id, 0]));
    const dagOut = new Map(ids.map((id) => [id, out.get(id).filter((to) => !back.has(id + '\u0000' + to))]));
    // Kahn's order over the DAG.
    const indeg = new Map(ids.map((id) => [id, 0]));
    for (const id of ids) for (const to of dagOut.get(id)) indeg.set(to, indeg.get(to) + 1);
    const queue = ids.filter((id) => indeg.get(id) === 0);
    while (queue.length) {
      const id = queue.shift();
      for (const to of dagOut.get(id)) {
        rank.set(to, Math.max(rank.get(to), rank.get(id) + 1));
        indeg.set(to, indeg.get(to) - 1);
        if (indeg.get(to) === 0) queue.push(to);
      }
    }
    // A topic a group only writes and reads back sits right of the group.
    for (const e of edges) {
      if (e.self && rank.get(e.from) <= rank.get(e.to) && !dagOut.get(e.from).length) rank.set(e.from, rank.get(e.to) + 1);
    }
    return rank;
  }

  // orderLayers sorts each layer to keep edges short: by name, then a few
  // sweeps ordering each node by the mean position of its neighbours.
  function orderLayers(nodes, edges, rank) {
    const n = Math.max(0, ...rank.values()) + 1;
    const cols = Array.from({ length: n }, () => []);
    for (const id of [...nodes.keys()].sort()) cols[rank.get(id)].push(id);
    const nb = new Map([...nodes.keys()].map((id) => [id, []]));
    for (const e of edges) { nb.get(e.from).push(e.to); nb.get(e.to).push(e.from); }
    for (let sweep = 0; sweep < 6; sweep++) {
      const at = new Map();
      cols.forEach((col) => col.forEach((id, j) => at.set(id, j / Math.max(1, col.length - 1))));
      const range = sweep % 2 === 0 ? cols.keys() : [...cols.keys()].reverse();
      for (const i of range) {
        const bary = new Map(cols[i].map((id) => {
          const ps = nb.get(id).filter((o) => rank.get(o) !== i).map((o) => at.get(o));
          return [id, ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : at.get(id)];
        }));
        cols[i].sort((a, b) => bary.get(a) - bary.get(b) || (a < b ? -1 : 1));
        cols[i].forEach((id, j) => at.set(id, j / Math.max(1, cols[i].length - 1)));
      }
    }
    return cols;
  }

  // ---- status: groups, partitions, restore ----

  function drawStatus(st) {
    const ready = st.recovered;
    const status = $('status');
    status.classList.remove('bad');
    status.replaceChildren(
      el('span', { class: ready ? 'ready' : 'notready' }, ready ? 'Ready' : 'Restoring'),
      ` · ${st.self.query || st.self.instance || 'this instance'} · updated ${new Date(st.time).toLocaleTimeString('en-GB')}`);
    if (st.lagError) status.append(el('span', { class: 'notready', title: st.lagError }, ' · lag unavailable'));
    drawGroups(st);
    drawRestore(st.progress);
    state.prev = st;
  }

  function ownerName(m) {
    if (!m || !m.instance) return '–';
    const name = m.query || m.instance;
    return state.self && m.instance === state.self.instance ? name + ' (this instance)' : name;
  }

  function drawGroups(st) {
    const lagBy = new Map(); // group -> partition -> [lag entries]
    for (const l of st.lag) {
      if (!lagBy.has(l.group)) lagBy.set(l.group, new Map());
      const ps = lagBy.get(l.group);
      if (!ps.has(l.partition)) ps.set(l.partition, []);
      ps.get(l.partition).push(l);
    }
    const members = new Map(st.membership.map((g) => [g.group, g]));
    const prev = state.prev;
    const secs = prev ? (Date.parse(st.time) - Date.parse(prev.time)) / 1000 : 0;
    const groups = state.topology ? state.topology.groups : Object.keys(st.counters).sort();
    const rows = groups.map((g) => {
      const c = st.counters[g] || {};
      const pc = prev && prev.counters[g];
      const rate = pc && secs > 0 ? Math.max(0, (c.processed - pc.processed) / secs) : null;
      const ms = members.get(g);
      let lag = 0;
      for (const ls of (lagBy.get(g) || new Map()).values()) for (const l of ls) lag += l.lag;
      return el('tr', { 'data-group': g },
        el('th', { scope: 'row', class: 'mono' }, g),
        el('td', { class: ms && ms.error ? 'err' : null }, ms ? (ms.error ? 'unknown: ' + ms.error : ms.state) : '–'),
        el('td', {}, ms ? (ms.members || []).length : '–'),
        el('td', { class: 'num' }, fmt(c.processed)),
        el('td', { class: 'num' }, rate === null ? '–' : rate.toFixed(1)),
        el('td', { class: 'num' }, fmt(c.applied)),
        el('td', { class: 'num' }, fmt(c.duplicates)),
        el('td', { class: 'num' + (c.deadLetters ? ' bad' : '') }, fmt(c.deadLetters)),
        el('td', { class: 'num' }, st.lagError ? '?' : fmt(lag)));
    });
    $('groups-table').tBodies[0].replaceChildren(...rows);

    // Per group, its partitions: kept as elements so that an open one stays
    // open (and focused) across polls.
    const box = $('partitions');
    box.classList.add('partitions');
    for (const g of groups) {
      let d = box.querySelector(`details[data-group="${CSS.escape(g)}"]`);
      if (!d) {
        d = el('details', { 'data-group': g }, el('summary', {}, `Partitions of ${g}`),
          el('table', {}, el('thead', {}, el('tr', {},
            el('th', { scope: 'col', class: 'num' }, 'Partition'), el('th', { scope: 'col' }, 'Owner'),
            el('th', { scope: 'col', class: 'num' }, 'Lag'), el('th', { scope: 'col' }, 'Committed / end per topic'))), el('tbody')));
        box.append(d);
      }
      const owners = (members.get(g) || {}).owners || {};
      const parts = new Set([...(lagBy.get(g) || new Map()).keys()]);
      for (const p of Object.keys(owners)) parts.add(Number(p));
      const body = d.querySelector('tbody');
      body.replaceChildren(...[...parts].sort((a, b) => a - b).map((p) => {
        const ls = (lagBy.get(g) || new Map()).get(p) || [];
        const lag = ls.reduce((a, l) => a + l.lag, 0);
        const detail = ls.filter((l) => l.end > 0 || l.committed >= 0)
          .map((l) => `${l.topic}: ${l.committed < 0 ? 'none' : l.committed} / ${l.end}`).join('; ');
        return el('tr', {}, el('td', { class: 'num' }, p), el('td', { class: 'mono' }, ownerName(owners[p])),
          el('td', { class: 'num' + (lag > 0 ? ' bad' : '') }, st.lagError ? '?' : fmt(lag)),
          el('td', { class: 'mono' }, detail || 'nothing written yet'));
      }));
    }
  }

  // restoreFraction is how much of its changelog a store has restored.
  function restoreFraction(p) {
    if (p.recovered) return 1;
    const from = Math.max(0, p.startOffset);
    const span = p.highWatermark - from;
    return span > 0 ? Math.min(1, Math.max(0, (p.offset + 1 - from) / span)) : 0;
  }

  // drawRestore shows one row per table: how many of its partitions are
  // restored, the least restored one's progress, and each partition's.
  function drawRestore(progress) {
    const box = $('restore-body');
    const tables = Object.keys(progress).sort();
    if (!tables.length) {
      box.replaceChildren(el('p', {}, 'No table is open on this instance.'));
      return;
    }
    const seen = JSON.stringify(progress);
    if (seen === state.restoreSeen) return;
    state.restoreSeen = seen;
    const open = new Set([...box.querySelectorAll('details[open]')].map((d) => d.dataset.table));
    const rows = tables.map((t) => {
      const ps = progress[t];
      const done = ps.filter((p) => p.recovered).length;
      const least = Math.round(Math.min(...ps.map(restoreFraction)) * 100);
      const faults = ps.filter((p) => p.fault).map((p) => `partition ${p.partition}: ${p.fault}`);
      const records = ps.reduce((a, p) => a + p.records, 0);
      const rate = ps.reduce((a, p) => a + (p.recovered ? 0 : p.ratePerSec), 0);
      const parts = el('details', { 'data-table': t, open: open.has(t) }, el('summary', {}, `${ps.length} partitions`),
        el('ul', { class: 'plain' }, ...ps.map((p) => el('li', {},
          `${p.partition}: ${Math.round(restoreFraction(p) * 100)}%, offset ${p.offset} of ${p.highWatermark}` +
          (p.recovered ? ', restored' : ', restoring') + (p.fault ? ', fault: ' + p.fault : '')))));
      return el('tr', { 'data-table': t },
        el('th', { scope: 'row', class: 'mono' }, t),
        el('td', {}, el('progress', { max: 100, value: least, 'aria-label': `${t}: least restored partition at ${least}%` }), ` ${least}%`),
        el('td', { class: faults.length ? 'err' : (done === ps.length ? 'good' : null) },
          faults.length ? faults.join('; ') : `${done} of ${ps.length} restored`),
        el('td', { class: 'num' }, fmt(records)),
        el('td', { class: 'num' }, done === ps.length ? '–' : Math.round(rate)),
        el('td', {}, parts));
    });
    box.replaceChildren(el('table', {},
      el('caption', {}, 'Tables open on this instance: restore from their changelogs'),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Table'), el('th', { scope: 'col' }, 'Least restored'),
        el('th', { scope: 'col' }, 'State'), el('th', { scope: 'col', class: 'num' }, 'Records applied'),
        el('th', { scope: 'col', class: 'num' }, 'Records/s'), el('th', { scope: 'col' }, 'Partitions'))),
      el('tbody', {}, ...rows)));
  }

  // ---- dead letters and parked records ----

  function fillGroups(groups) {
    const sel = $('dlq-group');
    sel.replaceChildren(...groups.map((g) => el('option', { value: g }, g)));
  }

  async function refreshDLQ() {
    const g = state.dlqGroup;
    if (!g) return;
    try {
      const [page, parked] = await Promise.all([
        admin('/dlq/' + encodeURIComponent(g) + '?limit=200'),
        admin('/parked/' + encodeURIComponent(g)),
      ]);
      if (g !== state.dlqGroup) return;
      drawDLQ(g, page);
      drawParked(parked.items);
      say('dlq-count', `${page.items.length} dead letter(s) in ${g}-dlq` +
        (page.next ? ' (first 200 shown)' : '') + `, ${parked.items.length} parked record(s).`);
    } catch (e) {
      say('dlq-count', `Cannot read the dead letters of ${g}: ${e.message}`, true);
    }
  }

  function drawDLQ(group, page) {
    const items = page.items || [];
    const seen = group + JSON.stringify(items);
    if (seen === state.dlqSeen) return; // unchanged: keep focus where it is
    state.dlqSeen = seen;
    const body = $('dlq-table').tBodies[0];
    if (!items.length) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: 9 }, 'No dead letters.')));
      return;
    }
    body.replaceChildren(...items.map((d) => {
      const r = d.redrive;
      const headers = Object.keys(d.headers || {}).sort();
      const btn = el('button', { type: 'button', class: 'redrive', 'aria-label': `Re-drive dead letter ${d.partition}/${d.offset} of key ${d.key}` }, 'Re-drive…');
      btn.addEventListener('click', () => askRedrive(group, d));
      return el('tr', { 'data-key': d.key, 'data-position': `${d.partition}/${d.offset}` },
        el('td', { class: 'mono' }, `${d.partition}/${d.offset}`),
        el('td', { class: 'mono' }, `${d.originalTopic}/${d.originalPartition}/${d.originalOffset}`),
        el('td', { class: 'mono' }, d.key),
        el('td', {}, d.class),
        el('td', { class: 'err' }, d.message,
          el('br'), el('span', { class: 'mono value' }, d.value === null ? 'tombstone' : (d.valueBase64 ? 'base64: ' : '') + clip(d.value, 160))),
        el('td', { class: 'num' }, d.attempts),
        el('td', { class: 'redrive-state' }, r ? `${r.status}${r.forced ? ' (forced)' : ''}, attempt ${r.attempts}${r.reason ? ': ' + r.reason : ''}` : 'never'),
        el('td', {}, headers.length ? el('details', {}, el('summary', {}, `${headers.length} headers`),
          el('dl', {}, ...headers.flatMap((h) => [el('dt', { class: 'mono' }, h), el('dd', { class: 'mono' }, d.headers[h])]))) : '–'),
        el('td', {}, btn));
    }));
  }

  function clip(text, n) {
    return text.length > n ? text.slice(0, n) + '…' : text;
  }

  function drawParked(items) {
    const seen = JSON.stringify(items);
    if (seen === state.parkedSeen) return;
    state.parkedSeen = seen;
    const body = $('parked-table').tBodies[0];
    if (!items.length) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: 4 }, 'No parked records.')));
      return;
    }
    body.replaceChildren(...items.map((p) => el('tr', {},
      el('td', { class: 'mono' }, p.key), el('td', { class: 'mono' }, `${p.topic}/${p.partition}/${p.offset}`),
      el('td', { class: 'mono' }, p.waitsFor), el('td', {}, new Date(p.since).toLocaleString('en-GB')))));
  }

  function askRedrive(group, d) {
    state.pending = { group, d, opener: document.activeElement };
    $('redrive-what').textContent = `Dead letter ${d.partition}/${d.offset} of ${group}: key ${d.key}, from ${d.originalTopic}/${d.originalPartition}/${d.originalOffset} (${d.class}: ${d.message}).`;
    $('redrive-force').checked = false;
    const dlg = $('redrive-dialog');
    dlg.returnValue = '';
    dlg.showModal();
    $('redrive-cancel').focus();
  }

  async function redriveClosed() {
    const p = state.pending;
    state.pending = null;
    if (!p) return;
    if (p.opener && p.opener.isConnected) p.opener.focus();
    if ($('redrive-dialog').returnValue !== 'confirm') {
      say('dlq-message', 'Re-drive cancelled.');
      return;
    }
    const body = { partition: p.d.partition, offset: p.d.offset };
    if ($('redrive-force').checked) body.force = true;
    try {
      const res = await admin('/dlq/' + encodeURIComponent(p.group) + '/redrive', { method: 'POST', body });
      const skipped = (res.skipped || []).map((s) => s.reason).join('; ');
      say('dlq-message', `Re-drove ${res.count} dead letter(s) of ${p.group}` + (skipped ? `; skipped: ${skipped}` : '') +
        '. Its re-drive state follows in the table.');
    } catch (e) {
      say('dlq-message', 'Re-drive failed: ' + e.message, true);
    }
    state.dlqSeen = '';
    refreshDLQ();
  }

  // ---- table browser ----

  function fillBrowser(res) {
    state.resources = res.resources;
    const routes = $('lookup-route');
    routes.replaceChildren(...res.lookups.map((l) => el('option', { value: l.path, 'data-variable': l.variable }, l.path)));
    const lists = res.resources.filter((r) => r.list);
    $('list-resource').replaceChildren(...lists.map((r) => el('option', { value: r.name }, r.list)));
    fillFilters();
    if (!res.lookups.length) say('browser-message', 'This application registers no key routes.');
  }

  function fillFilters() {
    const name = $('list-resource').value;
    const r = (state.resources || []).find((x) => x.name === name);
    const opts = [];
    if (r && !r.filterRequired) opts.push(el('option', { value: '' }, '(none: every key)'));
    for (const f of (r ? r.filters : [])) opts.push(el('option', { value: f }, f));
    $('list-filter').replaceChildren(...opts);
  }

  function show(doc) {
    $('browser-result').textContent = JSON.stringify(doc, null, 2);
  }

  async function lookup() {
    const sel = $('lookup-route');
    const opt = sel.selectedOptions[0];
    const key = $('lookup-key').value;
    if (!opt || !key) return;
    const path = opt.value.replace('{' + opt.dataset.variable + '}', encodeURIComponent(key));
    say('browser-message', 'GET ' + path + ' …');
    try {
      const doc = await call(path);
      say('browser-message', 'GET ' + path + ': found.');
      show(doc);
    } catch (e) {
      say('browser-message', 'GET ' + path + ': ' + e.message, e.status !== 404);
      show(e.body);
    }
  }

  async function list(next) {
    let path;
    if (next && state.list && state.list.next) {
      const u = new URL(state.list.path, location.origin);
      u.searchParams.set('cursor', state.list.next);
      path = u.pathname + u.search;
    } else {
      const r = (state.resources || []).find((x) => x.name === $('list-resource').value);
      if (!r) return;
      const f = $('list-filter').value;
      const q = new URLSearchParams();
      if (f) q.set(f, $('list-value').value);
      q.set('limit', '20');
      path = r.list + '?' + q.toString();
    }
    say('browser-message', 'GET ' + path + ' …');
    try {
      const page = await call(path);
      state.list = { path: next ? state.list.path : path, next: page.next || '' };
      $('list-next').disabled = !page.next;
      say('browser-message', `GET ${path}: ${page.items.length} item(s)` + (page.next ? ', more on the next page.' : '.'));
      show(page.items);
    } catch (e) {
      $('list-next').disabled = true;
      say('browser-message', 'GET ' + path + ': ' + e.message, true);
      show(e.body);
    }
  }

  // ---- instance ----

  function drawInfo(info) {
    const kv = (obj) => Object.keys(obj).sort().map((k) => el('tr', {}, el('th', { scope: 'row' }, k),
      el('td', { class: 'mono' }, typeof obj[k] === 'object' && obj[k] !== null ? JSON.stringify(obj[k]) : String(obj[k]))));
    $('version-table').tBodies[0].replaceChildren(...kv(Object.assign({ name: info.name, instance: info.self.instance, query: info.self.query || '–' }, info.version)));
    const cfg = kv(info.config);
    $('config-table').tBodies[0].replaceChildren(...(cfg.length ? cfg : [el('tr', {}, el('td', {}, 'The application gives none.'))]));
  }

  document.addEventListener('DOMContentLoaded', start);
})();
