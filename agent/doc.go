// Package agent wires Vigil together and owns its lifecycle: configuration,
// the start and stop order of sensors, the process cache, the exporter and the
// local control socket, health and metrics, and hot reload of policies.
//
// It holds no policy or kernel logic of its own; every component it starts is
// constructed explicitly in New, in the order it runs, and receives its
// configuration and logger as arguments.
package agent
