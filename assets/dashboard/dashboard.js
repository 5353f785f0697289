// Meridian's live dashboard: polls /api/v1/state and /api/v1/traffic and draws
// what the node does. Every name shown comes from the routing table, so text is
// only ever placed with textContent (never as HTML).

const POLL_MS = 1500;
const TIMEOUT_MS = 5000;
const HISTORY_SHOWN = 20;

/** The previous traffic document, for rates and percentiles over one interval. */
let previous = null;

/** Makes an element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function text(id, value) {
  const node = document.getElementById(id);
  if (node !== null) node.textContent = value;
}

function formatUptime(seconds) {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (d > 0) return `${d}d ${h}h ${m}m`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s}s`;
  return `${s}s`;
}

function formatTime(iso) {
  if (iso === null || iso === undefined) return '–';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleTimeString();
}

function formatRate(perSecond) {
  if (perSecond === null) return '–';
  return perSecond >= 100 ? perSecond.toFixed(0) : perSecond >= 10 ? perSecond.toFixed(1) : perSecond.toFixed(2);
}

function formatRatio(ratio) {
  return ratio === null ? '–' : `${(ratio * 100).toFixed(ratio > 0 && ratio < 0.01 ? 2 : 1)}%`;
}

function formatSeconds(seconds) {
  if (seconds === null) return '–';
  if (!Number.isFinite(seconds)) return `> ${formatSeconds(previous?.bucketsSeconds.at(-1) ?? 0)}`;
  return seconds < 1 ? `${(seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0)} ms` : `${seconds.toFixed(2)} s`;
}

/** Every endpoint of the state document, flattened, with where it serves. */
function endpointsOf(state) {
  const rows = [];
  for (const [service, s] of Object.entries(state.services ?? {})) {
    for (const [version, v] of Object.entries(s.versions ?? {})) {
      for (const [region, r] of Object.entries(v.regions ?? {})) {
        for (const ep of r.endpoints ?? []) rows.push({ service, version, region, regionDrain: r.drain === true, ep });
      }
    }
  }
  return rows;
}

/** up, down, drained or unchecked: what an endpoint's badge says. */
function endpointStatus(row) {
  if (row.ep.drain === true || row.regionDrain) return 'drained';
  if (row.ep.health === 'unchecked' && row.ep.up) return 'unchecked';
  return row.ep.up ? 'up' : 'down';
}

function badge(status, label = status) {
  return el('span', { class: `badge ${status}` }, label);
}

function renderNode(state) {
  text('node-name', `${state.node?.name ?? '?'}${state.node?.region ? ` (${state.node.region})` : ''}`);
  text('node-revision', String(state.revision));
  const source = document.getElementById('node-source');
  source.replaceChildren(String(state.source ?? 'none'), state.stale ? badge('stale') : '', state.ready ? '' : badge('down', 'not ready'));
  text('node-uptime', typeof state.uptimeSeconds === 'number' ? formatUptime(state.uptimeSeconds) : '–');
  text('node-updated', new Date().toLocaleTimeString());
}

function renderRegions(state, rows) {
  const cards = [];
  for (const [name, region] of Object.entries(state.regions ?? {})) {
    const mine = rows.filter((r) => r.region === name);
    const up = mine.filter((r) => r.ep.up && endpointStatus(r) !== 'drained').length;
    const status = region.drain ? 'drained' : mine.length === 0 ? 'idle' : up === mine.length ? 'up' : up === 0 ? 'down' : 'degraded';
    cards.push(
      el(
        'article',
        { class: `card ${status}`, 'data-region': name },
        el('h3', {}, name),
        el('p', { class: 'count' }, `${up}/${mine.length}`, el('span', { class: 'unit' }, ' endpoints up')),
        badge(status),
      ),
    );
  }
  document.getElementById('regions').replaceChildren(...(cards.length > 0 ? cards : [el('p', { class: 'empty' }, 'no regions')]));
}

/** Sums the cumulative figures of a traffic document by service, version and region (over routes). */
function totalsOf(traffic) {
  const totals = new Map();
  for (const s of traffic?.series ?? []) {
    if (s.service === '') continue;
    const key = `${s.service}\u0000${s.version}\u0000${s.region}`;
    let t = totals.get(key);
    if (t === undefined) {
      t = { requests: 0, errors: 0, buckets: new Array(s.latency.buckets.length).fill(0) };
      totals.set(key, t);
    }
    for (const n of Object.values(s.requests)) t.requests += n;
    t.errors += s.requests['5xx'];
    s.latency.buckets.forEach((n, i) => (t.buckets[i] += n));
  }
  return totals;
}

/** The q-quantile of a bucket histogram (counts cumulative), interpolated within its bucket as Prometheus does. */
function quantile(q, bounds, buckets) {
  const total = buckets.at(-1) ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  for (let i = 0; i < buckets.length; i++) {
    if (buckets[i] < rank) continue;
    if (i >= bounds.length) return Infinity;
    const lower = i === 0 ? 0 : bounds[i - 1];
    const below = i === 0 ? 0 : buckets[i - 1];
    const inBucket = buckets[i] - below;
    return inBucket <= 0 ? bounds[i] : lower + (bounds[i] - lower) * ((rank - below) / inBucket);
  }
  return null;
}

/** Per service/version/region: request rate, 5xx ratio and p99 between the previous document and this one (null before there are two). */
function intervalFigures(prev, now) {
  if (prev === null) return null;
  const figures = new Map();
  const seconds = (now.timeMs - prev.timeMs) / 1000;
  if (seconds <= 0) return null;
  const before = totalsOf(prev);
  for (const [key, t] of totalsOf(now)) {
    const b = before.get(key) ?? { requests: 0, errors: 0, buckets: t.buckets.map(() => 0) };
    // A series that went back (a route removed and re-added, a worker replaced) starts a new interval.
    const reset = t.requests < b.requests;
    const requests = reset ? t.requests : t.requests - b.requests;
    const errors = reset ? t.errors : Math.max(0, t.errors - b.errors);
    const buckets = t.buckets.map((n, i) => (reset ? n : Math.max(0, n - (b.buckets[i] ?? 0))));
    figures.set(key, {
      rate: requests / seconds,
      errorRatio: requests > 0 ? errors / requests : null,
      p99: requests > 0 ? quantile(0.99, now.bucketsSeconds, buckets) : null,
    });
  }
  return figures;
}

function renderServices(state, figures) {
  const rows = [];
  for (const [service, s] of Object.entries(state.services ?? {})) {
    const versions = Object.entries(s.versions ?? {});
    const weightSum = versions.reduce((sum, [, v]) => sum + (v.weight ?? 0), 0);
    let serviceRate = 0;
    for (const [key, f] of figures ?? []) if (key.startsWith(`${service}\u0000`)) serviceRate += f.rate;
    rows.push(
      el('tr', { class: 'service', 'data-service': service }, el('th', { scope: 'row', colspan: 4 }, service, el('span', { class: 'muted' }, ` ${s.steering ?? ''}`)), el('td', { class: 'num rate' }, formatRate(figures === null ? null : serviceRate)), el('td'), el('td')),
    );
    for (const [version, v] of versions) {
      const share = weightSum > 0 ? `${Math.round(((v.weight ?? 0) / weightSum) * 1000) / 10}%` : '–';
      const regions = Object.keys(v.regions ?? {});
      // Requests that reached no endpoint (nothing healthy, no endpoint in any region) count under region ''.
      if (figures?.get(`${service}\u0000${version}\u0000`)?.rate > 0) regions.push('');
      const bar = el('span', { class: 'bar' });
      // Set through the CSSOM: the page's CSP forbids style attributes.
      bar.style.width = weightSum > 0 ? `${((v.weight ?? 0) / weightSum) * 3}em` : '0';
      const split = el('span', { class: 'split' }, bar, share);
      regions.forEach((region, i) => {
        const f = figures?.get(`${service}\u0000${version}\u0000${region}`);
        const errorRatio = f?.errorRatio ?? null;
        rows.push(
          el(
            'tr',
            { 'data-service': service, 'data-version': version, 'data-region': region },
            el('td'),
            el('td', {}, i === 0 ? version : ''),
            el('td', {}, i === 0 ? split : ''),
            el('td', {}, region === '' ? el('span', { class: 'muted' }, 'no endpoint') : region),
            el('td', { class: 'num rate' }, formatRate(figures === null ? null : (f?.rate ?? 0))),
            el('td', { class: `num${errorRatio !== null && errorRatio > 0 ? ' bad' : ''}` }, formatRatio(errorRatio)),
            el('td', { class: 'num' }, formatSeconds(f?.p99 ?? null)),
          ),
        );
      });
    }
  }
  document.querySelector('#services tbody').replaceChildren(...(rows.length > 0 ? rows : [el('tr', {}, el('td', { colspan: 7, class: 'empty' }, 'no services'))]));
}

function renderEndpoints(rows) {
  const out = rows.map((row) => {
    const status = endpointStatus(row);
    return el(
      'tr',
      { class: status, 'data-endpoint': row.ep.address, 'data-region': row.region },
      el('td', {}, row.service),
      el('td', {}, row.version),
      el('td', {}, row.region, row.regionDrain ? badge('drained') : ''),
      el('td', { class: 'address' }, row.ep.address),
      el('td', { class: 'health' }, badge(status === 'drained' ? (row.ep.up ? 'drained' : 'down') : status, status === 'drained' && !row.ep.up ? 'down, drained' : status)),
      el('td', { class: 'reason' }, row.ep.reason ?? ''),
      el('td', { class: 'muted' }, formatTime(row.ep.since)),
    );
  });
  document.querySelector('#endpoints tbody').replaceChildren(...(out.length > 0 ? out : [el('tr', {}, el('td', { colspan: 7, class: 'empty' }, 'no endpoints'))]));
}

function renderChanges(state) {
  const errors = state.errors ?? [];
  document.getElementById('errors').replaceChildren(
    ...(errors.length === 0
      ? [el('p', { class: 'ok' }, 'No problems in the routing table.')]
      : [el('h3', {}, `Problems now (${errors.length})`), el('ul', { class: 'problems' }, ...errors.map((e) => el('li', {}, el('code', {}, e.key || '(table)'), ` ${e.message}`)))]),
  );
  const history = (state.history ?? []).slice(0, HISTORY_SHOWN).map((h) =>
    el(
      'li',
      { class: h.result },
      el('span', { class: 'when' }, formatTime(h.at)),
      badge(h.result === 'applied' ? 'up' : 'down', h.result),
      ` ${h.source}`,
      h.result === 'applied' ? ` revision ${h.revision}` : ` (revision ${h.revision} stays)`,
      ...(h.errors ?? []).map((e) => el('div', { class: 'detail' }, el('code', {}, e.key || '(table)'), ` ${e.message}`)),
      h.moreErrors > 0 ? el('div', { class: 'detail muted' }, `and ${h.moreErrors} more`) : null,
    ),
  );
  document.getElementById('history').replaceChildren(...(history.length > 0 ? history : [el('li', { class: 'empty' }, 'no changes yet')]));
}

function renderFleet(state) {
  const fleet = state.store?.fleet;
  const section = document.getElementById('fleet-section');
  if (fleet === undefined || fleet === null) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  const rows = Object.entries(fleet).map(([name, view]) => {
    const endpoints = Object.values(view?.endpoints ?? {});
    const up = endpoints.filter((e) => e?.up === true).length;
    return el(
      'tr',
      { 'data-node': name },
      el('td', {}, name),
      el('td', {}, view?.region ?? '–'),
      el('td', { class: 'num' }, String(view?.revision ?? '?')),
      el('td', {}, `${up}/${endpoints.length}`, view?.invalid === undefined ? '' : badge('down', 'unreadable')),
      el('td', { class: 'muted' }, formatTime(view?.updatedAt)),
    );
  });
  document.querySelector('#fleet tbody').replaceChildren(...(rows.length > 0 ? rows : [el('tr', {}, el('td', { colspan: 5, class: 'empty' }, 'no node has published its view'))]));
}

/** One version's figures of a rollout step: requests, error rate, p99. */
function stepFigure(f) {
  if (f === undefined || f === null || f.requests === 0) return '–';
  const p99 = f.p99Ms === null ? '–' : `${f.p99Ms.toFixed(1)} ms`;
  return `${f.requests} req, ${formatRatio(f.errors / f.requests)} errors, p99 ${p99}`;
}

const ROLLOUT_BADGE = { running: 'up', succeeded: 'up', paused: 'drained', failed: 'down', aborted: 'down', starting: 'drained' };

function renderRollouts(state) {
  const part = state.rollouts;
  const section = document.getElementById('rollouts-section');
  const entries = Object.entries(part?.rollouts ?? {});
  if (part === undefined || part === null || (entries.length === 0 && (part.errors ?? []).length === 0)) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  const rows = entries.map(([service, r]) =>
    el(
      'tr',
      { 'data-rollout': service, 'data-state': r.state },
      el('td', {}, service),
      el('td', {}, `${r.from} → ${r.to}`),
      el('td', {}, badge(ROLLOUT_BADGE[r.state] ?? 'drained', r.state)),
      el('td', {}, r.step === null ? '–' : `${r.step + 1}/${r.steps.length} · ${r.weight} %`),
      el('td', {}, stepFigure(r.figures?.to)),
      el('td', {}, stepFigure(r.figures?.from)),
      el('td', { class: 'muted' }, r.reason ?? ''),
      el('td', { class: 'muted' }, formatTime(r.stepStartedAt)),
    ),
  );
  document.querySelector('#rollouts tbody').replaceChildren(...(rows.length > 0 ? rows : [el('tr', {}, el('td', { colspan: 8, class: 'empty' }, 'no rollout'))]));
}

function showBanner(message) {
  const banner = document.getElementById('banner');
  banner.textContent = message;
  banner.hidden = message === null;
}

async function getJson(path, signal) {
  const res = await fetch(path, { cache: 'no-store', credentials: 'same-origin', signal, headers: { accept: 'application/json' } });
  if (res.status === 401) throw new Error('not authorised: reload the page and sign in with the admin token');
  if (!res.ok) throw new Error(`${path} answered ${res.status}`);
  return res.json();
}

async function poll() {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
  try {
    const [state, traffic] = await Promise.all([getJson('/api/v1/state', abort.signal), getJson('/api/v1/traffic', abort.signal)]);
    const rows = endpointsOf(state);
    const figures = intervalFigures(previous, traffic);
    previous = traffic;
    renderNode(state);
    renderRegions(state, rows);
    renderServices(state, figures);
    renderEndpoints(rows);
    renderChanges(state);
    renderRollouts(state);
    renderFleet(state);
    showBanner(null);
    document.body.dataset.state = 'live';
  } catch (err) {
    showBanner(`Connection lost: ${err instanceof Error && err.name !== 'AbortError' ? err.message : 'no answer'}. Retrying…`);
    document.body.dataset.state = 'lost';
  } finally {
    clearTimeout(timer);
    setTimeout(poll, POLL_MS);
  }
}

poll();
