// Package relay is the cluster-wide view: it follows the Hubble Observer
// API of every agent (found through the Kubernetes API, or listed), keeps
// their flows in one store, and serves that store through the same Hubble
// API and web UI as an agent does, with node names on every flow.
//
// Each peer has one following stream whose flows go into the store without
// waiting: clients of the relay read the store with their own cursors, so a
// slow client never slows a peer, let alone an agent. Peers that cannot be
// reached are retried with backoff and reported as unavailable.
package relay
