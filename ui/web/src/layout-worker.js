// Runs the fCoSE layout of cytoscape-fcose off the page's main thread:
// receives the map's elements (with their current positions for an
// incremental layout) and answers with the new positions.
import cytoscape from 'cytoscape';
import fcose from 'cytoscape-fcose';

cytoscape.use(fcose);

self.onmessage = (ev) => {
  const { id, elements, randomize } = ev.data;
  const cy = cytoscape({
    headless: true,
    styleEnabled: true,
    style: [{ selector: 'node', style: { width: 36, height: 36 } }],
    elements,
  });
  const n = cy.nodes().length;
  cy.layout({
    name: 'fcose',
    // Draft (spectral only) lets namespaces overlap; the default quality
    // refines with forces, with fewer rounds on large maps.
    quality: 'default',
    randomize,
    animate: false,
    fit: false,
    nodeSeparation: 90,
    idealEdgeLength: 110,
    nodeRepulsion: 9000,
    packComponents: true,
    tile: true,
    numIter: n > 300 ? 1000 : 2500,
  }).run();
  const positions = {};
  cy.nodes().forEach((node) => {
    if (!node.isParent()) positions[node.id()] = node.position();
  });
  cy.destroy();
  self.postMessage({ id, positions });
};
