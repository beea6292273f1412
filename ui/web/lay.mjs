import cytoscape from 'cytoscape';
import fcose from 'cytoscape-fcose';
cytoscape.use(fcose);
const els = [
 {group:'nodes',data:{id:'ns:default'}},{group:'nodes',data:{id:'ns:empire'}},
 {group:'nodes',data:{id:'d',parent:'ns:default'},position:{x:0,y:0}},
 {group:'nodes',data:{id:'t',parent:'ns:default'},position:{x:100,y:0}},
 {group:'nodes',data:{id:'x',parent:'ns:default'},position:{x:200,y:0}},
 {group:'nodes',data:{id:'s',parent:'ns:empire'},position:{x:300,y:0}},
 {group:'edges',data:{id:'e1',source:'t',target:'d'}},
 {group:'edges',data:{id:'e2',source:'x',target:'d'}},
 {group:'edges',data:{id:'e3',source:'s',target:'d'}},
];
for (const randomize of [true,false]) for (const q of ['default','proof']) {
const cy = cytoscape({headless:true, styleEnabled:true, style:[{selector:'node',style:{width:36,height:36}}], elements: els});
cy.layout({name:'fcose', quality:q, randomize, animate:false, fit:false, nodeSeparation:90, idealEdgeLength:110, nodeRepulsion:9000, packComponents:true, tile:true, numIter:2500}).run();
console.log(randomize, q, cy.nodes().filter(n=>!n.isParent()).map(n=>n.id()+':'+Math.round(n.position().x)+','+Math.round(n.position().y)).join(' '));
}
