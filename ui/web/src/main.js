// Vigil's web UI: the service map and the flow table over the UI's API.
import { h, render } from 'preact';
import { useEffect, useRef, useState, useCallback } from 'preact/hooks';
import htm from 'htm';
import { ServiceMap } from './graph.js';

const html = htm.bind(h);

// The filters live in the URL, so a view can be shared and reloaded.
const filterKeys = ['ns', 'verdict', 'label', 'window', 'node'];

function readURL() {
  const q = new URLSearchParams(location.search);
  const f = { view: q.get('view') === 'flows' ? 'flows' : 'map' };
  for (const k of filterKeys) f[k] = q.get(k) || '';
  if (!f.window) f.window = '15m';
  return f;
}

function filterQuery(f) {
  const q = new URLSearchParams();
  for (const k of filterKeys) if (f[k]) q.set(k, f[k]);
  return q.toString();
}

function writeURL(f) {
  const q = new URLSearchParams(filterQuery(f));
  if (f.view !== 'map') q.set('view', f.view);
  const s = q.toString();
  history.replaceState(null, '', location.pathname + (s ? '?' + s : ''));
}

async function getJSON(path) {
  const r = await fetch(path, { credentials: 'same-origin' });
  if (r.status === 401) throw Object.assign(new Error('sign in'), { status: 401 });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${(await r.text()).trim()}`);
  return r.json();
}

function download(name, blob) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

function csvOf(header, rows) {
  const cell = (v) => {
    const s = v === undefined || v === null ? '' : Array.isArray(v) ? v.join('; ') : String(v);
    return /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  };
  return [header.join(','), ...rows.map((r) => header.map((k) => cell(r[k])).join(','))].join('\n') + '\n';
}

const fmtTime = (t) => new Date(t).toISOString().replace('T', ' ').replace('Z', '');

function Verdict({ v }) {
  const name = String(v).toLowerCase();
  return html`<span class="verdict ${name}">${name}</span>`;
}

const pod = (id, p) => (p ? id.split('/')[0] + '/' + p : id);

function FlowRows({ rows, empty, compact }) {
  if (!rows.length) return html`<p class="empty">${empty || 'No flows.'}</p>`;
  const proc = (r) => html`${r.process ? `${r.process}[${r.pid}]` : ''}${r.parent ? html` <span class="dim">← ${r.parent}</span>` : ''}
    ${r.arguments ? html`<div class="args" title=${r.arguments}>${r.arguments}</div>` : ''}`;
  const reason = (r) => [r.drop_reason, ...(r.policies || [])].filter(Boolean).join(' · ');
  if (compact) {
    return html`<table class="flows compact">
      <thead><tr><th>Time</th><th>Flow</th><th>Verdict</th><th>Process</th></tr></thead>
      <tbody>${rows.map((r, i) => html`<tr key=${r.time + r.edge + i}>
        <td class="time">${fmtTime(r.time).slice(11)}<div class="dim">${r.node} · ${r.direction.toLowerCase()}</div></td>
        <td>${pod(r.source, r.source_pod)} → ${pod(r.destination, r.destination_pod)}
          <div class="dim">${r.protocol}${r.destination_port ? '/' + r.destination_port : ''}${r.l7 ? ' · ' + r.l7 : ''}</div></td>
        <td><${Verdict} v=${r.verdict} /><div class="dim">${reason(r)}</div></td>
        <td>${proc(r)}</td></tr>`)}</tbody></table>`;
  }
  return html`<table class="flows">
    <thead><tr><th>Time</th><th>Node</th><th>Source</th><th>Destination</th><th>Port</th><th>Verdict</th>
      <th>Reason / policy</th><th>Process</th><th>L7</th></tr></thead>
    <tbody>${rows.map((r, i) => html`<tr key=${r.time + r.edge + i} class=${'row-' + r.verdict.toLowerCase()}>
      <td class="time">${fmtTime(r.time)}</td><td>${r.node}</td>
      <td title=${r.source_ip}>${pod(r.source, r.source_pod)}</td>
      <td title=${r.destination_ip}>${pod(r.destination, r.destination_pod)}</td>
      <td>${r.protocol}${r.destination_port ? '/' + r.destination_port : ''}</td>
      <td><${Verdict} v=${r.verdict} /></td>
      <td>${reason(r)}</td>
      <td>${proc(r)}</td>
      <td>${r.l7}</td></tr>`)}</tbody></table>`;
}

function ProcessTree({ nodes }) {
  if (!nodes.length) return html`<p class="empty">No processes seen in its flows.</p>`;
  return html`<ul class="tree">${nodes.map((n) => html`<li key=${n.exec_id}>
    <span class="proc">${n.binary}[${n.pid}]</span>${n.arguments ? html` <span class="dim">${n.arguments}</span>` : ''}
    ${n.flows ? html` <span class="count">${n.flows} flow${n.flows > 1 ? 's' : ''}</span>` : ''}
    ${n.children && n.children.length ? html`<${ProcessTree} nodes=${n.children} />` : ''}</li>`)}</ul>`;
}

function EdgePanel({ d, onSelect }) {
  const e = d.edge;
  return html`<div>
    <h2><a href="#" onClick=${(ev) => { ev.preventDefault(); onSelect({ type: 'workload', id: e.source }); }}>${e.source}</a>
      ${' → '}<a href="#" onClick=${(ev) => { ev.preventDefault(); onSelect({ type: 'workload', id: e.target }); }}>${e.target}</a></h2>
    <p class="sub">${e.protocol}${e.port ? '/' + e.port : ''} · <${Verdict} v=${e.verdict} /></p>
    <dl>
      <dt>Flows</dt><dd>${e.forwarded} forwarded · ${e.dropped} dropped${e.audit ? ` · ${e.audit} audit` : ''}</dd>
      ${e.drop_reasons && e.drop_reasons.length ? html`<dt>Drop reasons</dt><dd>${e.drop_reasons.join(', ')}</dd>` : ''}
      <dt>Policies</dt><dd>${e.policies && e.policies.length
        ? html`<ul class="plain">${e.policies.map((p) => html`<li key=${p.name}>${p.name} <${Verdict} v=${p.verdict} /></li>`)}</ul>`
        : 'none decided these flows'}</dd>
      <dt>Processes</dt><dd>${e.processes && e.processes.length ? e.processes.join(', ') : 'unknown'}</dd>
      ${e.l7 && e.l7.length ? html`<dt>L7</dt><dd><ul class="plain">${e.l7.map((l) => html`<li key=${l}>${l}</li>`)}</ul></dd>` : ''}
      <dt>Last seen</dt><dd>${fmtTime(e.last)}</dd>
    </dl>
    <h3>Recent flows</h3>
    <${FlowRows} rows=${d.flows} compact empty="No flows of this edge are held any more." />
  </div>`;
}

function WorkloadPanel({ d, onSelect }) {
  const w = d.workload;
  return html`<div>
    <h2>${w.id}</h2>
    <p class="sub">${w.kind || (w.reserved ? 'reserved identity' : '')}</p>
    <h3>Labels</h3>
    <p>${(w.labels || []).map((l) => html`<span class="chip" key=${l}>${l}</span>`)}${!(w.labels || []).length ? 'none' : ''}</p>
    <h3>Pods</h3>
    ${d.pods.length ? html`<ul class="plain">${d.pods.map((p) => html`<li key=${p.name}>${p.name}${p.node ? html` <span class="dim">on ${p.node}</span>` : ''}</li>`)}</ul>` : html`<p class="empty">No pods.</p>`}
    <h3>Policies selecting it</h3>
    ${d.policies.length ? html`<ul class="plain">${d.policies.map((p) => html`<li key=${p}>${p}</li>`)}</ul>` : html`<p class="empty">No policy decided its traffic.</p>`}
    <h3>Connections</h3>
    <ul class="plain">${d.edges.map((e) => html`<li key=${e.id}><a href="#" onClick=${(ev) => { ev.preventDefault(); onSelect({ type: 'edge', id: e.id }); }}>
      ${e.source} → ${e.target} ${e.protocol}${e.port ? '/' + e.port : ''}</a> <${Verdict} v=${e.verdict} /></li>`)}</ul>
    <h3>Process tree</h3>
    <${ProcessTree} nodes=${d.processes} />
    <h3>Recent flows</h3>
    <${FlowRows} rows=${d.flows} compact />
  </div>`;
}

// LabelInput keeps what is being typed in its own state: the live updates
// re-render the page every second and must not wipe it.
function LabelInput({ value, onApply }) {
  const [draft, setDraft] = useState(value);
  useEffect(() => setDraft(value), [value]);
  return html`<input name="label" placeholder="org=empire" value=${draft}
    onInput=${(e) => setDraft(e.target.value)}
    onKeyDown=${(e) => { if (e.key === 'Enter') onApply(e.target.value.trim()); }}
    onBlur=${(e) => onApply(e.target.value.trim())} />`;
}

function Login({ onDone }) {
  const [err, setErr] = useState('');
  const submit = async (ev) => {
    ev.preventDefault();
    const body = new URLSearchParams({ token: ev.target.token.value });
    const r = await fetch('api/login', { method: 'POST', body, credentials: 'same-origin' });
    if (r.ok) onDone(); else setErr((await r.text()).trim());
  };
  return html`<form class="login" onSubmit=${submit}>
    <h2>Sign in to Vigil</h2>
    <label>API token <input name="token" type="password" autocomplete="current-password" /></label>
    <button type="submit">Sign in</button>
    ${err ? html`<p class="error">${err}</p>` : ''}
  </form>`;
}

function App() {
  const [f, setF] = useState(readURL);
  const [auth, setAuth] = useState('checking');
  const [status, setStatus] = useState(null);
  const [live, setLive] = useState('connecting');
  const [stats, setStats] = useState(null);
  const [namespaces, setNamespaces] = useState([]);
  const [sel, setSel] = useState(null);
  const [detail, setDetail] = useState(null);
  const [rows, setRows] = useState([]);
  const [skipped, setSkipped] = useState(0);
  const [error, setError] = useState('');
  const mapEl = useRef(null);
  const map = useRef(null);
  const selRef = useRef(null);
  selRef.current = sel;

  const update = (change) => setF((old) => { const n = { ...old, ...change }; writeURL(n); return n; });

  useEffect(() => {
    getJSON('api/status').then((s) => { setStatus(s); setAuth('ok'); })
      .catch((e) => setAuth(e.status === 401 ? 'login' : 'ok'));
  }, []);

  useEffect(() => {
    if (auth !== 'ok' || map.current) return;
    map.current = new ServiceMap(mapEl.current, { onSelect: setSel });
    window.vigil = { map: map.current };
  }, [auth]);

  // The live stream: a fresh one for every filter.
  useEffect(() => {
    if (auth !== 'ok') return undefined;
    const q = filterQuery(f);
    setError('');
    setLive('connecting');
    const es = new EventSource('api/stream?' + q);
    es.addEventListener('map', (ev) => {
      const v = JSON.parse(ev.data);
      map.current.setSnapshot(v);
      setStats(v.stats);
      setNamespaces((old) => [...new Set([...old, ...v.nodes.map((n) => n.namespace).filter(Boolean)])].sort());
      setLive('live');
      window.vigil.snapshots = (window.vigil.snapshots || 0) + 1;
    });
    es.addEventListener('delta', (ev) => {
      const d = JSON.parse(ev.data);
      map.current.applyDelta(d);
      setStats(d.stats);
      if (d.nodes.length) setNamespaces((old) => [...new Set([...old, ...d.nodes.map((n) => n.namespace).filter(Boolean)])].sort());
      if (d.flows.length) setRows((old) => [...d.flows, ...old].slice(0, 1000));
      if (d.skipped_flows) setSkipped((n) => n + d.skipped_flows);
      setLive('live');
      window.vigil.deltas = (window.vigil.deltas || 0) + 1;
    });
    es.onerror = () => {
      setLive('reconnecting');
      getJSON('api/whoami').catch((e) => { if (e.status === 401) { es.close(); setAuth('login'); } });
    };
    getJSON('api/flows?limit=500&' + q).then((r) => { setRows(r); setSkipped(0); })
      .catch((e) => setError(e.message));
    return () => es.close();
  }, [auth, f.ns, f.verdict, f.label, f.window, f.node]);

  // The side panel follows the selection, refreshed with the live updates.
  const loadDetail = useCallback(() => {
    const s = selRef.current;
    if (!s) { setDetail(null); return; }
    const path = s.type === 'edge' ? 'api/edge' : 'api/workload';
    getJSON(`${path}?id=${encodeURIComponent(s.id)}&${filterQuery(f)}`)
      .then((d) => { if (selRef.current === s) setDetail({ ...s, d }); })
      .catch((e) => setDetail({ ...s, error: e.message }));
  }, [f]);
  useEffect(() => { if (map.current) map.current.select(sel); loadDetail(); }, [sel, f]);
  useEffect(() => {
    if (!sel) return undefined;
    const t = setInterval(loadDetail, 3000);
    return () => clearInterval(t);
  }, [sel, loadDetail]);

  const exportJSON = () => {
    const data = f.view === 'map' ? map.current.shown() : rows;
    download(`vigil-${f.view}.json`, new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }));
  };
  const exportCSV = () => {
    if (f.view === 'map') {
      const edges = map.current.shown().edges;
      download('vigil-map.csv', new Blob([csvOf(['source', 'target', 'protocol', 'port', 'forwarded', 'dropped', 'audit', 'verdict',
        'drop_reasons', 'policies', 'processes', 'l7', 'last'], edges.map((e) => ({ ...e, policies: (e.policies || []).map((p) => `${p.name} (${p.verdict})`) })))], { type: 'text/csv' }));
    } else {
      download('vigil-flows.csv', new Blob([csvOf(['time', 'node', 'source', 'source_pod', 'source_ip', 'source_port', 'destination',
        'destination_pod', 'destination_ip', 'destination_port', 'protocol', 'verdict', 'drop_reason', 'direction', 'policies',
        'process', 'pid', 'arguments', 'parent', 'l7'], rows)], { type: 'text/csv' }));
    }
  };
  const exportPNG = () => download('vigil-map.png', map.current.png());

  if (auth === 'login') return html`<${Login} onDone=${() => location.reload()} />`;
  return html`<div class="app">
    <header>
      <h1>Vigil</h1>
      <span class="mode">${status ? (status.mode === 'relay' ? `cluster · ${(status.nodes || []).filter((n) => n.connected).length} of ${(status.nodes || []).length} nodes` : status.node ? `node ${status.node}` : '') : ''}</span>
      <nav role="tablist">
        <button role="tab" aria-selected=${f.view === 'map'} onClick=${() => update({ view: 'map' })}>Service map</button>
        <button role="tab" aria-selected=${f.view === 'flows'} onClick=${() => update({ view: 'flows' })}>Flows</button>
      </nav>
      <div class="filters">
        <label>Namespace <select name="ns" value=${f.ns} onChange=${(e) => update({ ns: e.target.value })}>
          <option value="">all</option>
          ${[...new Set([...namespaces, ...(f.ns ? [f.ns] : [])])].map((n) => html`<option key=${n} value=${n}>${n}</option>`)}
        </select></label>
        <label>Verdict <select name="verdict" value=${f.verdict} onChange=${(e) => update({ verdict: e.target.value })}>
          <option value="">all</option><option value="forwarded">forwarded</option><option value="dropped">dropped</option><option value="audit">audit</option>
        </select></label>
        <label>Label <${LabelInput} value=${f.label} onApply=${(label) => update({ label })} /></label>
        <label>Window <select name="window" value=${f.window} onChange=${(e) => update({ window: e.target.value })}>
          ${['1m', '5m', '15m', '1h', 'all'].map((w) => html`<option key=${w} value=${w}>${w === 'all' ? 'all time' : 'last ' + w}</option>`)}
        </select></label>
        ${status && status.mode === 'relay' ? html`<label>Node <select name="node" value=${f.node} onChange=${(e) => update({ node: e.target.value })}>
          <option value="">all</option>${(status.nodes || []).map((n) => html`<option key=${n.name} value=${n.name}>${n.name}</option>`)}</select></label>` : ''}
      </div>
      <div class="export">
        <button onClick=${exportJSON}>Export JSON</button>
        <button onClick=${exportCSV}>Export CSV</button>
        ${f.view === 'map' ? html`<button onClick=${exportPNG}>Export PNG</button>` : ''}
      </div>
    </header>
    ${error ? html`<p class="error" role="alert">${error}</p>` : ''}
    <main>
      <div class="map" ref=${mapEl} hidden=${f.view !== 'map'} aria-label="service map"></div>
      ${f.view === 'flows' ? html`<section class="table">
        ${skipped ? html`<p class="dim">${skipped} more flows arrived than the table shows.</p>` : ''}
        <${FlowRows} rows=${rows} empty="No flows match the filters." /></section>` : ''}
      ${detail ? html`<aside class="panel" aria-label="details">
        <button class="close" aria-label="close" onClick=${() => setSel(null)}>×</button>
        ${detail.error ? html`<p class="error">${detail.error}</p>` : detail.type === 'edge'
          ? html`<${EdgePanel} d=${detail.d} onSelect=${setSel} />` : html`<${WorkloadPanel} d=${detail.d} onSelect=${setSel} />`}
      </aside>` : ''}
    </main>
    <footer>
      <span class="live ${live}">${live === 'live' ? '● live' : live}</span>
      ${stats ? html`<span>${stats.workloads} workloads · ${stats.edges} edges · ${stats.flows} flows seen</span>
        ${stats.lost ? html`<span class="warn">${stats.lost} flows lost before the store</span>` : ''}
        ${stats.missed ? html`<span class="warn">${stats.missed} flows missed by the map</span>` : ''}` : ''}
      <span class="legend"><i class="forwarded"></i>forwarded <i class="dropped"></i>dropped <i class="mixed"></i>both <i class="audit"></i>audit</span>
    </footer>
  </div>`;
}

render(html`<${App} />`, document.getElementById('app'));
