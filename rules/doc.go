// Package rules runs detection rules written in Rego over Vigil's enriched
// event stream and raises alert events.
//
// A rule is one Rego module in package vigil.rules.NAME with a constant
// metadata object (id, name, description, severity, MITRE ATT&CK tactic
// and technique, tags, and the event types it consumes) and a partial set
// rule alert whose members are the alerts' descriptions. The input of a
// rule is one event exactly as Vigil exports it: the JSON object of
// `vigil events -o json`, with its one type key (process_exec, flow, ...).
//
// A Set is a compiled rule set: every rule consuming an event type is
// evaluated by one prepared query for that type, so an event costs one
// evaluation whatever the number of rules. The Engine runs a Set in the
// agent: Submit copies an event onto a bounded queue (never blocking the
// kernel-to-sink path; what does not fit is counted), one goroutine
// evaluates, exceptions (RuleExceptions documents) drop alerts for listed
// binaries, namespaces and images, and the alerts go to the exporter. Rule
// and exception files are watched and reloaded; a file that no longer
// compiles leaves its previous version running.
package rules
