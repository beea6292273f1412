// The service map: cytoscape renders workloads (grouped in their
// namespaces) and edges; positions come from fCoSE in a web worker.
import cytoscape from 'cytoscape';

const colors = { forwarded: '#1a7f37', dropped: '#cf222e', mixed: '#bf8700', audit: '#8250df' };

const style = [
  { selector: 'node', style: {
    'background-color': '#0969da', label: 'data(label)', 'font-size': 11, color: '#1f2328',
    'text-valign': 'bottom', 'text-margin-y': 4, width: 28, height: 28, 'min-zoomed-font-size': 7,
  } },
  { selector: 'node.reserved', style: { shape: 'diamond', 'background-color': '#6e7781' } },
  { selector: 'node.namespace', style: {
    shape: 'round-rectangle', 'background-color': '#f6f8fa', 'background-opacity': 0.9, 'border-color': '#8c959f',
    'border-width': 1, label: 'data(label)', 'text-valign': 'top', 'text-halign': 'center', 'font-weight': 'bold',
    'font-size': 13, color: '#57606a', padding: 18,
  } },
  { selector: 'node:selected', style: { 'border-width': 3, 'border-color': '#fb8500' } },
  { selector: 'edge', style: {
    width: 'data(width)', 'line-color': 'data(color)', 'target-arrow-color': 'data(color)',
    'target-arrow-shape': 'triangle', 'curve-style': 'bezier', 'arrow-scale': 1.1,
    label: 'data(label)', 'font-size': 9, 'text-rotation': 'autorotate', 'text-background-color': '#ffffff',
    'text-background-opacity': 0.85, 'text-background-padding': 2, color: '#1f2328', 'min-zoomed-font-size': 8,
  } },
  { selector: 'edge.dropped', style: { 'line-style': 'dashed', 'line-dash-pattern': [6, 3] } },
  { selector: 'edge.quiet', style: { label: '', 'curve-style': 'straight' } },
  { selector: 'edge.quiet.hover, edge.quiet:selected', style: { label: 'data(label)' } },
  { selector: 'edge:selected', style: { 'overlay-color': '#fb8500', 'overlay-opacity': 0.25 } },
];

// edgeLabel is what the map writes on an edge: protocol/port, counts, and
// for drops the policy that decided.
export function edgeLabel(e) {
  const parts = [`${e.protocol}${e.port ? '/' + e.port : ''}`];
  if (e.forwarded) parts.push(`${e.forwarded} forwarded`);
  if (e.dropped) {
    const by = (e.policies || []).filter((p) => p.verdict === 'dropped').map((p) => p.name.split(' ').pop());
    parts.push(`${e.dropped} dropped${by.length ? ' by ' + by.join(', ') : ''}`);
  }
  if (e.audit) parts.push(`${e.audit} audit`);
  return parts.join(' · ');
}

function edgeData(e) {
  const n = e.forwarded + e.dropped + e.audit;
  return {
    id: e.id, source: e.source, target: e.target, label: edgeLabel(e), verdict: e.verdict,
    color: colors[e.verdict] || colors.forwarded, width: Math.min(1.5 + Math.log10(1 + n) * 1.5, 7), view: e,
  };
}

function nodeElement(n) {
  const el = { group: 'nodes', data: { id: n.id, label: n.name, view: n }, classes: n.reserved ? 'reserved' : '' };
  if (n.namespace) el.data.parent = 'ns:' + n.namespace;
  return el;
}

export class ServiceMap {
  constructor(container, { onSelect }) {
    this.onSelect = onSelect;
    this.edges = new Map();
    this.nodes = new Map();
    this.layoutSeq = 0;
    this.layoutPending = null;
    this.firstPaint = null;
    this.layoutsDone = 0;
    this.cy = cytoscape({
      container, style, elements: [], wheelSensitivity: 0.3, boxSelectionEnabled: false,
      textureOnViewport: true, hideEdgesOnViewport: true, motionBlur: false, pixelRatio: 1, maxZoom: 3, minZoom: 0.02,
    });
    this.cy.on('tap', 'node', (ev) => {
      const n = ev.target;
      if (n.hasClass('namespace')) return;
      this.onSelect({ type: 'workload', id: n.id() });
    });
    this.cy.on('tap', 'edge', (ev) => this.onSelect({ type: 'edge', id: ev.target.id() }));
    this.cy.on('tap', (ev) => { if (ev.target === this.cy) this.onSelect(null); });
    this.cy.on('mouseover', 'edge', (ev) => ev.target.addClass('hover'));
    this.cy.on('mouseout', 'edge', (ev) => ev.target.removeClass('hover'));
    new ResizeObserver(() => this.cy.resize()).observe(container);
    this.worker = new Worker('layout-worker.js');
    this.worker.onmessage = (ev) => this.applyLayout(ev.data);
  }

  ensureNamespace(ns) {
    const id = 'ns:' + ns;
    if (this.cy.getElementById(id).empty()) {
      this.cy.add({ group: 'nodes', data: { id, label: ns }, classes: 'namespace' });
    }
  }

  // setSnapshot replaces the map with a full view from the server.
  setSnapshot(view) {
    const cy = this.cy;
    const t0 = performance.now();
    // Large maps draw edges straight and label them on hover or selection:
    // thousands of curved, labelled edges take seconds to draw.
    this.large = view.edges.length > 1000;
    // Compound nodes make cytoscape's first style pass slow on large maps
    // (each node's style touches its parent's and siblings'): those are
    // drawn without their namespaces first, and grouped once the worker's
    // layout, which knows the namespaces, comes back.
    this.grouped = !this.large;
    const els = [];
    const namespaces = new Set();
    this.edges.clear();
    this.nodes.clear();
    for (const n of view.nodes) {
      if (n.namespace && !namespaces.has(n.namespace) && this.grouped) {
        namespaces.add(n.namespace);
        els.push({ group: 'nodes', data: { id: 'ns:' + n.namespace, label: n.namespace }, classes: 'namespace' });
      }
      const el = nodeElement(n);
      if (!this.grouped) delete el.data.parent;
      els.push(el);
      this.nodes.set(n.id, n);
    }
    for (const e of view.edges) {
      els.push({ group: 'edges', data: edgeData(e), classes: this.edgeClasses(e) });
      this.edges.set(e.id, e);
    }
    cy.batch(() => {
      cy.elements().remove();
      cy.add(els);
    });
    const t1 = performance.now();
    // A quick placement from cytoscape's grid layout (of the workloads,
    // without measuring labels) paints the map at once; fCoSE in the
    // worker then arranges it.
    cy.nodes().not('.namespace').layout({ name: 'grid', avoidOverlap: false, fit: false,
      sort: (a, b) => (a.data('parent') || '').localeCompare(b.data('parent') || '') || a.id().localeCompare(b.id()) }).run();
    this.fit();
    const t2 = performance.now();
    cy.one('render', () => {
      if (this.firstPaint === null) {
        this.firstPaint = performance.now();
        this.timings = { received: t0, added: t1 - t0, placed: t2 - t1, drawn: this.firstPaint - t2 };
      }
      // The worker's layout starts once the map is on screen, so that it
      // does not compete with the first drawing.
      this.requestLayout(true);
    });
  }

  edgeClasses(e) {
    return this.large ? e.verdict + ' quiet' : e.verdict;
  }

  // applyDelta merges a live update.
  applyDelta(d) {
    const cy = this.cy;
    let added = false;
    cy.batch(() => {
      for (const id of d.removed_edges) {
        cy.getElementById(id).remove();
        this.edges.delete(id);
      }
      for (const n of d.nodes) {
        if (this.nodes.has(n.id)) continue;
        const el = nodeElement(n);
        if (this.grouped && n.namespace) this.ensureNamespace(n.namespace);
        else delete el.data.parent;
        el.position = this.placeNear(n);
        cy.add(el);
        this.nodes.set(n.id, n);
        added = true;
      }
      for (const e of d.edges) {
        const el = cy.getElementById(e.id);
        if (el.empty()) {
          cy.add({ group: 'edges', data: edgeData(e), classes: this.edgeClasses(e) });
          added = true;
        } else {
          el.data(edgeData(e));
          el.classes(this.edgeClasses(e) + (el.hasClass('hover') ? ' hover' : ''));
        }
        this.edges.set(e.id, e);
      }
      for (const c of d.counts || []) {
        const old = this.edges.get(c.id);
        const el = cy.getElementById(c.id);
        if (!old || el.empty()) continue;
        const e = { ...old, ...c };
        el.data(edgeData(e));
        el.classes(this.edgeClasses(e) + (el.hasClass('hover') ? ' hover' : ''));
        this.edges.set(c.id, e);
      }
      for (const id of d.removed_nodes) {
        cy.getElementById(id).remove();
        this.nodes.delete(id);
      }
      cy.nodes('.namespace').forEach((ns) => { if (ns.children().empty()) ns.remove(); });
    });
    if (added) this.requestLayout(false);
  }

  // group puts the workloads into their namespaces' boxes.
  group() {
    const cy = this.cy;
    cy.batch(() => {
      for (const n of this.nodes.values()) {
        if (!n.namespace) continue;
        this.ensureNamespace(n.namespace);
        const el = cy.getElementById(n.id);
        if (el.nonempty() && el.data('parent') !== 'ns:' + n.namespace) el.move({ parent: 'ns:' + n.namespace });
      }
    });
    this.grouped = true;
  }

  // placeNear puts a new workload next to its namespace until the next
  // layout moves it.
  placeNear(n) {
    const parent = n.namespace ? this.cy.getElementById('ns:' + n.namespace) : null;
    const bb = parent && parent.nonempty() && parent.children().nonempty() ? parent.boundingBox() : this.cy.elements().boundingBox();
    const x = Number.isFinite(bb.x2) ? bb.x2 + 40 : 0;
    const y = Number.isFinite(bb.y1) ? bb.y1 + Math.random() * Math.max(bb.h, 40) : 0;
    return { x, y };
  }

  // requestLayout asks the worker for a layout, at most one at a time;
  // incremental ones start from the current positions.
  requestLayout(randomize) {
    if (this.layoutPending !== null) {
      this.layoutAgain = this.layoutAgain || { randomize };
      return;
    }
    const id = ++this.layoutSeq;
    this.layoutPending = id;
    // Small maps are laid out afresh (it is cheap and finds a better
    // picture); large ones move from where they are, so that people keep
    // their bearings. Positions get a little jitter: forces cannot pull
    // nodes that sit exactly on a line off it.
    if (this.cy.nodes().length < 60) randomize = true;
    const elements = this.cy.elements().map((el) => {
      const o = { group: el.group(), data: { id: el.id() } };
      if (el.isEdge()) Object.assign(o.data, { source: el.data('source'), target: el.data('target') });
      else {
        const n = this.nodes.get(el.id());
        if (n && n.namespace) o.data.parent = 'ns:' + n.namespace;
        if (!el.isParent()) {
          const p = el.position();
          o.position = { x: p.x + Math.random() * 4 - 2, y: p.y + Math.random() * 4 - 2 };
        }
      }
      return o;
    });
    if (!this.grouped) {
      // The namespaces are not drawn yet; the layout still groups by them.
      const have = new Set();
      for (const n of this.nodes.values()) {
        if (n.namespace && !have.has(n.namespace)) {
          have.add(n.namespace);
          elements.unshift({ group: 'nodes', data: { id: 'ns:' + n.namespace } });
        }
      }
    }
    this.worker.postMessage({ id, elements, randomize });
  }

  applyLayout({ id, positions }) {
    if (id !== this.layoutPending) return;
    this.layoutPending = null;
    const cy = this.cy;
    cy.batch(() => {
      cy.nodes().forEach((n) => { const p = positions[n.id()]; if (p && !n.isParent()) n.position(p); });
    });
    if (!this.grouped) this.group();
    this.fit();
    this.layoutsDone++;
    if (this.firstLayout === undefined) this.firstLayout = performance.now();
    if (this.layoutAgain) {
      const { randomize } = this.layoutAgain;
      this.layoutAgain = null;
      this.requestLayout(randomize);
    }
  }

  // fit shows the whole map, without blowing a small one up.
  fit() {
    const cy = this.cy;
    cy.fit(cy.nodes(), 40);
    if (cy.zoom() > 1.2) {
      cy.zoom(1.2);
      cy.center();
    }
  }

  select(sel) {
    this.cy.elements().unselect();
    if (sel) this.cy.getElementById(sel.id).select();
  }

  // shown lists what the map shows, for the JSON export.
  shown() {
    return { nodes: [...this.nodes.values()], edges: [...this.edges.values()] };
  }

  png() {
    return this.cy.png({ full: true, scale: 2, bg: '#ffffff', output: 'blob' });
  }

  // renderedCenter is where on the page an element is drawn (for tests
  // and for keyboard focus): the middle of an edge, the centre of a node.
  renderedCenter(id) {
    const el = this.cy.getElementById(id);
    if (el.empty()) return null;
    const box = this.cy.container().getBoundingClientRect();
    const p = el.isEdge() ? el.renderedMidpoint() : el.renderedPosition();
    return { x: box.left + p.x, y: box.top + p.y };
  }

  // drawn returns the labels the map draws on edges and nodes.
  drawn() {
    return {
      nodes: this.cy.nodes().not('.namespace').map((n) => ({ id: n.id(), label: n.data('label'), parent: n.data('parent') || '' })),
      namespaces: this.cy.nodes('.namespace').map((n) => n.data('label')),
      edges: this.cy.edges().map((e) => ({ id: e.id(), source: e.data('source'), target: e.data('target'), label: e.data('label'), verdict: e.data('verdict'), color: e.data('color') })),
    };
  }
}
