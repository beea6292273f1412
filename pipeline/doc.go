// Package pipeline is the route of every event from the kernel to the sinks,
// written out in one place:
//
//	read    the shared ring buffer (observer)
//	decode  by opcode, the sensor's decoder turns a kernel record into an
//	        event, enriched once from the process cache and the pod of its
//	        cgroup (process, flows, tracingsensor)
//	hold    the events of a container whose pod is not known yet wait for it,
//	        briefly and bounded (hold.go)
//	detect  the rules engine takes what its rules consume, off the hot path
//	        (rules)
//	export  encode once, filter, shape and queue the line to every sink
//	        (exporter)
//
// Every stage runs on the reader's goroutine up to the sink queues; nothing
// on the way blocks, and what a stage drops is counted and reported as
// lost_events. The package wires stages; it knows no record layout.
package pipeline
