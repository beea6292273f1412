// Package hubble serves Vigil's flows through Hubble's Observer gRPC API
// (GetFlows with filters, field masks and follow; ServerStatus; GetNodes),
// so that the hubble CLI and other clients of that API read them unchanged.
//
// Flows enter as event.Event values (the agent's: PutEvent) or as Hubble
// flows from other nodes (the relay's: Put), and are kept in a Store: a
// fixed ring that never waits for its readers. An event becomes a Hubble
// flow (see Converter) only when a reader asks for one, so that a flow
// nobody reads costs an append; ReadRecords gives the events themselves. A reader that falls behind is told how many flows
// it missed with a LostEvent, as Hubble does. The process that owns a flow's
// local socket, which Hubble's Flow message lacks, travels in the flow's
// extensions field (see ProcessOf).
//
// The package owns no listener or TLS setup of its own beyond Serve; it
// never modifies an event or a flow once stored: readers share them.
package hubble
