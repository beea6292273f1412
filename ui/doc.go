// Package ui serves Vigil's web UI: a live service map (workloads as nodes
// grouped by namespace, flows as edges with their verdicts, policies and
// processes), a flow table, and the JSON, CSV and server-sent-event API
// they read. The front-end is built from ui/web into ui/assets, which are
// committed and embedded, so building Vigil needs no Node.
//
// The UI reads flows from a hubble.Store (the agent's own, or the relay's
// merged one) with its own cursor: it never slows what fills the store, and
// counts what it missed. It folds them into the map only while a page
// follows it or when asked (catching up from the ring), and reads the
// agent's flows as Vigil's events (see facts), building no Hubble message
// but for the flows it shows in tables. It is read-only, and beyond loopback it requires
// authentication (see apiauth).
//
// Start wires the agent's side: the flow store fed from the exporter, the
// Hubble Observer API and the UI server.
package ui
