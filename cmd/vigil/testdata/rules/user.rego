# A user rule: cat reading anything below /etc (process_kprobe events of the
# default openat hook) is worth a low alert.
package vigil.rules.cat_etc

import data.vigil.lib.events

metadata := {
	"id": "USER-001",
	"name": "cat below /etc",
	"description": "cat opened a file below /etc.",
	"severity": "low",
	"mitre": {"tactic": "TA0007 Discovery", "technique": "T1083 File and Directory Discovery"},
	"tags": ["user"],
	"events": ["process_kprobe"],
}

alert contains msg if {
	ev := input.process_kprobe
	events.basename(ev.process.binary) == "cat"
	path := events.arg(ev, "filename").string_arg
	startswith(path, "/etc/")
	msg := sprintf("cat read %s", [path])
}
