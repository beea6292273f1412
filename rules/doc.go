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
// A Set is a compiled rule set. The input is read in place, never
// encoded: the typed input (view*.go) presents an event as its exported
// JSON. The alert bodies the compiler understands (compile.go) are
// evaluated in Go with Rego's semantics (eval.go), through an index of
// their conditions on values every event has (index.go); the rest, and
// what Go cannot decide exactly, by OPA's evaluator on the Rego value of
// the input (rego.go). The Engine runs a Set in the agent: Submit checks
// the rules' conditions on the caller's goroutine and copies onto a
// bounded queue only the events a rule may alert on (never blocking; what
// does not fit is counted), one goroutine evaluates them, exceptions
// (RuleExceptions documents) drop alerts for listed binaries, namespaces
// and images, and the alerts go to the exporter. Rule and exception files
// are watched and reloaded; a file that no longer compiles leaves its
// previous version running. Offline evaluates recorded JSON lines with
// the same Set.
//
// The typed input must stay exactly what the exporter writes
// (TestTypedInputIsTheExportedJSON), and the Go evaluator must give
// Rego's alerts (TestGoEvaluationMatchesRego, TestPlans): a change to
// exporter/encode or to what the compiler reads is checked there.
package rules
