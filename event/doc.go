// Package event defines Vigil's internal event model: processes, pods,
// process lifecycle, tracing-policy hits, flows, alerts and loss records.
//
// Values here are plain data, built by the observer and the sensors and
// read by the exporter and the rules engine. They are not a wire format;
// the JSON shape lives in package exporter.
package event
