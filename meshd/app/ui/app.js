// meshd /ui: polls this node's read-only JSON API and renders it. No dependencies; every
// value from the daemon (node ids and prefixes come from other nodes) is inserted as text,
// never as HTML.
'use strict';

const STATE_EVERY_MS = 2000;   // full state refresh
const EVENTS_EVERY_MS = 500;   // event poll; a relevant event triggers a state refresh at once
const MAX_EVENTS = 300;

const $ = (id) => document.getElementById(id);
let lastEvent = 0;
let clockOffset = 0;  // server now - local now
let selected = null;  // prefix whose explanation is shown
let knownBlocks = new Set();
let stateInFlight = false;
let stateAgain = false;
let lastOk = 0;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function getJSON(url) {
  const r = await fetch(url, { cache: 'no-store', credentials: 'same-origin' });
  if (!r.ok) {
    let msg = r.status + ' ' + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return r.json();
}

const serverNow = () => Date.now() + clockOffset;

function fmtDuration(ms) {
  if (ms <= 0) return '0 s';
  const s = Math.round(ms / 1000);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
}
const fmtNum = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : String(n));
const fmt3 = (x) => (typeof x === 'number' ? x.toFixed(3) : String(x));
const fmtTime = (ms) => new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
function fmtSeconds(s) {
  if (s < 1) return +(s * 1000).toPrecision(3) + ' ms';
  if (s < 60) return +s.toPrecision(3) + ' s';
  return +(s / 60).toPrecision(3) + ' min';
}

function setLive(ok, text) {
  const live = $('live');
  live.className = ok ? 'live' : 'live off';
  live.textContent = text;
}

// ---- state ------------------------------------------------------------------------------

async function refreshState() {
  if (stateInFlight) { stateAgain = true; return; }
  stateInFlight = true;
  try {
    const s = await getJSON('/ui/api/state');
    clockOffset = s.now - Date.now();
    lastOk = Date.now();
    render(s);
  } catch (e) {
    setLive(false, 'no answer: ' + e.message);
  } finally {
    stateInFlight = false;
    if (stateAgain) { stateAgain = false; refreshState(); }
  }
}

function render(s) {
  $('node-id').textContent = s.node.id;
  $('node-meta').textContent = [
    'domain ' + s.node.domain, 'enforcement ' + s.node.backend, 'policy ' + s.node.policy,
    s.node.peers_connected + ' peers connected', 'up ' + fmtDuration(s.node.uptime_ms)].join(' · ');
  document.title = 'meshd ' + s.node.id;
  renderCounters(s);
  renderBlocks(s);
  renderPeers(s.peers);
  renderLedger(s);
  renderHistogram(s.propagation);
  renderDecisions(s.decisions);
}

function renderCounters(s) {
  const c = s.counters;
  const tiles = [
    ['blocks active', c.blocks_active], ['blocks pending', c.blocks_pending],
    ['claims in', c.claims_in_push + c.claims_in_sync], ['claims signed', c.claims_signed],
    ['claims rejected', c.claims_rejected], ['detections', c.detections],
    ['blocks enforced', c.blocks_enforced_total], ['blocks lifted', c.blocks_lifted_total],
    ['misbehaviour', c.misbehaviour_detected + c.proofs_received],
    ['packets dropped', c.packets_dropped], ['connects denied', c.connects_denied],
    ['gossip events', c.gossip_events_new]];
  $('counters').replaceChildren(...tiles.map(([k, v]) =>
    el('div', { class: 'tile' }, el('div', { class: 'v', text: fmtNum(v) }), el('div', { class: 'k', text: k }))));
}

function scoreBar(score, threshold) {
  const pct = (x) => Math.max(0, Math.min(100, x * 100)) + '%';
  const bar = el('div', { class: 'bar', title: 'score ' + fmt3(score) + ', threshold ' + fmt3(threshold) });
  const fill = el('span');
  fill.style.width = pct(score);
  const mark = el('i');
  mark.style.left = pct(threshold);
  bar.append(fill, mark);
  return bar;
}

function renderBlocks(s) {
  const body = $('blocks').tBodies[0];
  $('blocks-count').textContent = s.blocks_total > s.blocks.length
    ? '(newest ' + s.blocks.length + ' of ' + s.blocks_total + ')'
    : '(' + s.blocks_total + (s.blocks_pending ? ', ' + s.blocks_pending + ' waiting for budget' : '') + ')';
  const seen = new Set();
  const rows = s.blocks.map((b) => {
    seen.add(b.prefix);
    const origins = b.by_operator ? 'operator' : b.origins.map((o) => o.origin).join(', ');
    const tr = el('tr', { 'data-prefix': b.prefix, class: b.prefix === selected ? 'selected' : '' },
      el('td', { class: 'mono', text: b.prefix }),
      el('td', { text: b.direction }),
      el('td', {}, fmt3(b.score) + ' / ' + fmt3(b.threshold), scoreBar(b.score, b.threshold)),
      el('td', { 'data-expires': b.expires_at, class: 'ttl', text: fmtDuration(b.expires_at - serverNow()) }),
      el('td', { text: origins }));
    if (knownBlocks.size && !knownBlocks.has(b.prefix)) tr.classList.add('fresh');
    tr.addEventListener('click', () => showExplain(b.prefix));
    return tr;
  });
  knownBlocks = seen.size ? seen : new Set(['']);
  if (!rows.length) rows.push(el('tr', { class: 'empty' }, el('td', { colspan: 5, text: 'no active blocks' })));
  body.replaceChildren(...rows);
}

function renderPeers(peers) {
  const rows = peers.map((p) => el('tr', {},
    el('td', { class: 'mono', text: p.node }),
    el('td', { text: p.domain }),
    el('td', {}, p.connected
      ? el('span', { class: 'badge ok', text: 'connected' + (p.outbound ? ' (out)' : ' (in)') })
      : el('span', { class: 'badge warn', text: p.banned_until > serverNow() ? 'banned' : 'down' })),
    el('td', { title: 'disconnected at ' + p.score_threshold, text: p.score.toFixed(1) }),
    el('td', {}, p.quarantined ? el('span', { class: 'badge bad', text: 'quarantined' }) : fmt3(p.trust))));
  if (!rows.length) rows.push(el('tr', { class: 'empty' }, el('td', { colspan: 5, text: 'no peers yet' })));
  $('peers').tBodies[0].replaceChildren(...rows);
}

function renderLedger(s) {
  $('ledger-count').textContent = s.ledger_total > s.ledger.length
    ? '(' + s.ledger.length + ' of ' + s.ledger_total + ')' : '';
  const rows = s.ledger.map((o) => el('tr', {},
    el('td', { class: 'mono', text: o.origin + (o.self ? ' (this node)' : '') }),
    el('td', { text: o.domain }),
    el('td', {}, fmt3(o.trust), scoreBar(o.trust, 0)),
    el('td', {}, o.quarantined
      ? el('span', { class: 'badge bad', text: new Date(o.quarantine_until).toLocaleString('en-GB') })
      : '-')));
  $('ledger').tBodies[0].replaceChildren(...rows);
}

function quantile(bounds, buckets, q) {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (!total) return null;
  let rank = q * total, acc = 0;
  for (let i = 0; i < buckets.length; i++) {
    if (acc + buckets[i] >= rank) {
      if (i >= bounds.length) return bounds[bounds.length - 1];
      const lo = i ? bounds[i - 1] : 0;
      return lo + (bounds[i] - lo) * ((rank - acc) / buckets[i]);
    }
    acc += buckets[i];
  }
  return bounds[bounds.length - 1];
}

function renderHistogram(p) {
  const box = $('histogram');
  const W = 520, H = 190, left = 30, bottom = 34, top = 14;
  const n = p.bounds.length + 1;
  const slot = (W - left - 4) / n;
  const max = Math.max(1, ...p.push.buckets, ...p.sync.buckets);
  const y = (v) => H - bottom - (v / max) * (H - bottom - top);
  const parts = [svg('line', { x1: left, y1: H - bottom, x2: W, y2: H - bottom, stroke: '#cbd5e1' })];
  parts.push(svg('text', { x: 2, y: top + 4 }, fmtNum(max)), svg('text', { x: 2, y: H - bottom }, '0'));
  for (let i = 0; i < n; i++) {
    const x = left + i * slot;
    const label = i < p.bounds.length ? '≤' + fmtSeconds(p.bounds[i]) : '>' + fmtSeconds(p.bounds[n - 2]);
    [['push', p.push.buckets[i]], ['sync', p.sync.buckets[i]]].forEach(([cls, v], k) => {
      if (!v) return;
      const bx = x + 2 + k * (slot - 4) / 2;
      const r = svg('rect', { class: cls, x: bx, y: y(v), width: Math.max(1, (slot - 4) / 2 - 1), height: H - bottom - y(v) });
      r.append(svg('title', {}, cls + ' ' + label + ': ' + v));
      parts.push(r);
    });
    if (i % 2 === 0) {
      parts.push(svg('text', { x: x + slot / 2, y: H - bottom + 12, 'text-anchor': 'middle' }, label.replace('≤', '')));
    }
  }
  parts.push(svg('text', { x: W / 2, y: H - 4, 'text-anchor': 'middle' }, 'issued_at → accepted here'));
  box.replaceChildren(...parts);
  const summary = [];
  for (const path of ['push', 'sync']) {
    const h = p[path];
    if (!h.count) continue;
    const p50 = quantile(p.bounds, h.buckets, 0.5), p99 = quantile(p.bounds, h.buckets, 0.99);
    summary.push(path + ' n=' + fmtNum(h.count) + ' p50 ' + fmtSeconds(p50) + ' p99 ' + fmtSeconds(p99));
  }
  $('prop-summary').textContent = summary.length ? '(' + summary.join('; ') + ')' : '(no claims received yet)';
}

function renderDecisions(d) {
  const rows = Object.entries(d).filter(([, v]) => v > 0).map(([k, v]) =>
    el('tr', {}, el('td', {}, el('span', { class: 'badge' + (k === 'enforce' ? ' ok' : ''), text: k })), el('td', { text: fmtNum(v) })));
  if (!rows.length) rows.push(el('tr', { class: 'empty' }, el('td', { colspan: 2, text: 'no decisions yet' })));
  $('decisions').tBodies[0].replaceChildren(...rows);
}

// TTLs count down between refreshes.
setInterval(() => {
  for (const td of document.querySelectorAll('td.ttl')) {
    td.textContent = fmtDuration(Number(td.dataset.expires) - serverNow());
  }
  if (lastOk) {
    const age = (Date.now() - lastOk) / 1000;
    if (age < 6) setLive(true, 'live · updated ' + age.toFixed(1) + ' s ago');
    else setLive(false, 'stale: no answer for ' + Math.round(age) + ' s');
  }
}, 1000);

// ---- explain ----------------------------------------------------------------------------

async function showExplain(prefix) {
  selected = prefix;
  for (const tr of $('blocks').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.prefix === prefix);
  $('explain-card').hidden = false;
  $('explain-prefix').textContent = prefix;
  $('explain').replaceChildren(el('p', { class: 'muted', text: 'asking the engine…' }));
  try {
    const x = await getJSON('/ui/api/explain?ip=' + encodeURIComponent(prefix));
    if (selected !== prefix) return;
    const t = x.targets.find((t) => t.prefix === prefix) || x.targets[0];
    $('explain').replaceChildren(renderExplanation(t));
  } catch (e) {
    $('explain').replaceChildren(el('p', { class: 'badge bad', text: 'explain failed: ' + e.message }));
  }
}

function renderExplanation(t) {
  const kv = el('dl', { class: 'kv', id: 'explain-summary' });
  const add = (k, v) => kv.append(el('dt', { text: k }), el('dd', {}, v));
  add('verdict', el('span', { class: 'badge' + (t.enforce ? ' ok' : ''), id: 'explain-verdict', text: t.verdict }));
  add('score S', fmt3(t.score) + ' (threshold C/(B+C) = ' + fmt3(t.threshold) + ')');
  add('cost C / benefit B', (typeof t.cost === 'number' ? fmt3(t.cost) : t.cost) + ' / ' + fmt3(t.benefit) + ' (' + fmtNum(t.flows) + ' flows)');
  add('failure domains', t.domains_supporting + (t.single_domain ? ' (single domain: budget applies)' : ''));
  add('TTL granted', fmtDuration(t.ttl_ms));
  if (t.enforced) add('enforced', 'since ' + fmtTime(t.enforced_since) + ', until ' + fmtTime(t.enforced_until));
  if (t.protected_reason) add('protected', t.protected_reason + ' (' + t.protected_by + ')');
  if (t.budget && t.budget.applies) add('budget', t.budget.origin + ': ' + t.budget.tokens.toFixed(2) + ' of ' + t.budget.capacity.toFixed(2) + ' tokens' + (t.budget.pending ? ', waiting' : ''));
  const claims = el('table', { id: 'explain-claims' },
    el('thead', {}, el('tr', {}, ...['origin', 'domain', 'detector', 'trust', 'confidence', 'contribution', 'issued'].map((h) => el('th', { text: h })))),
    el('tbody', {}, ...t.claims.map((c) => el('tr', {},
      el('td', { class: 'mono', text: c.origin + (c.quarantined ? ' (quarantined)' : '') }),
      el('td', { text: c.domain }), el('td', { text: c.detector + ' · ' + c.severity }),
      el('td', { text: fmt3(c.trust) }), el('td', { text: fmt3(c.confidence) }),
      el('td', { text: fmt3(c.contribution) }), el('td', { text: fmtTime(c.issued_at) })))));
  const domains = el('table', {},
    el('thead', {}, el('tr', {}, ...['domain', 'support', 'lead origin'].map((h) => el('th', { text: h })))),
    el('tbody', {}, ...t.domains.map((d) => el('tr', {},
      el('td', { text: d.domain }), el('td', { text: fmt3(d.support) }), el('td', { class: 'mono', text: d.lead })))));
  return el('div', {}, kv, el('h3', { class: 'muted', text: 'claims' }), claims,
    el('h3', { class: 'muted', text: 'support by failure domain' }), domains,
    el('details', {}, el('summary', { text: "the engine's own words (meshctl explain)" }), el('pre', { text: t.text })));
}

$('explain-close').addEventListener('click', () => {
  selected = null;
  $('explain-card').hidden = true;
  for (const tr of $('blocks').tBodies[0].rows) tr.classList.remove('selected');
});

// ---- events -----------------------------------------------------------------------------

function describe(e) {
  switch (e.event) {
    case 'claim_received':
      return ['claim in', `${e.origin} claims ${e.prefix} (${e.detector}, confidence ${fmt3(e.confidence)}) via ${e.path}, ${e.latency_ms} ms after signing → ${e.verdict}`];
    case 'claims_received': return ['claims in', `${fmtNum(e.count)} more claims (a burst, counted not listed)`];
    case 'claim_signed': return ['claim out', `${e.prefix} by ${e.detector} (confidence ${fmt3(e.confidence)}): ${e.reason}`];
    case 'detection_refused': return ['detection', `${e.detector} saw ${e.prefix}, no claim signed: ${e.why}`];
    case 'retraction_signed': return ['retraction out', `${e.prefix}`];
    case 'block_enforce': return ['decision: block', `${e.prefix} ${e.direction}, score ${fmt3(e.score)} (${e.cause}), until ${fmtTime(e.expires_at)}`];
    case 'block_retime': return ['decision: retime', `${e.prefix} until ${fmtTime(e.expires_at)} (${e.cause})`];
    case 'block_lift': return ['decision: lift', `${e.prefix} (${e.cause})`];
    case 'misbehaviour_proof': return ['proof out', `${e.accused}: ${e.kind} (${e.detail})`];
    case 'proof_received': return ['proof in', `${e.reporter} accuses ${e.accused}: ${e.kind}`];
    case 'quarantined': return ['quarantine', `${e.origin} (${e.domain}) until ${new Date(e.until).toLocaleString('en-GB')}`];
    case 'peer_up': return ['peer up', `${e.peer} (${e.domain})`];
    case 'peer_down': return ['peer down', `${e.peer}: ${e.reason}`];
    case 'peer_banned': return ['peer banned', `${e.peer}: ${e.reason}`];
    case 'started': return ['started', `${e.node} (${e.backend})`];
    case 'reloaded': return ['reloaded', `${e.changes} block changes`];
    default: return [e.event || 'event', JSON.stringify(e)];
  }
}
const BAD = new Set(['quarantine', 'proof in', 'proof out', 'peer banned', 'decision: block']);

async function pollEvents() {
  try {
    const r = await getJSON('/ui/api/events?after=' + lastEvent);
    lastEvent = r.next;
    if (r.events.length) {
      const list = $('events');
      let relevant = false;
      for (const { id, e } of r.events) {
        const [kind, text] = describe(e);
        relevant ||= e.event !== 'claims_received';
        list.prepend(el('li', { 'data-id': id, 'data-event': e.event },
          el('span', { class: 't', text: e.at ? fmtTime(e.at) : '' }),
          el('span', { class: 'k' }, el('span', { class: 'badge' + (BAD.has(kind) ? ' bad' : ''), text: kind })),
          el('span', { text })));
      }
      while (list.children.length > MAX_EVENTS) list.lastChild.remove();
      if (relevant) refreshState();
    }
  } catch (e) {
    setLive(false, 'no answer: ' + e.message);
  }
  setTimeout(pollEvents, EVENTS_EVERY_MS);
}

refreshState();
setInterval(refreshState, STATE_EVERY_MS);
pollEvents();
