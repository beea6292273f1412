package vigil.rules.kubernetes_api_from_container

import data.vigil.lib.events

metadata := {
	"id": "VGL-DISC-001",
	"name": "Kubernetes API server contacted from a container",
	"description": "A process in a container opened a connection to the Kubernetes API server (port 6443, or 443 of a pod labelled as the API server): discovery or privilege escalation with the pod's service account.",
	"severity": "medium",
	"mitre": {"tactic": "TA0007 Discovery", "technique": "T1613 Container and Resource Discovery"},
	"tags": ["kubernetes", "network"],
	"events": ["flow"],
}

apiserver_labels := {"k8s:component=kube-apiserver", "k8s:k8s-app=kube-apiserver"}

alert contains msg if {
	f := input.flow
	f.traffic_direction == "EGRESS"
	events.in_container(f.process)
	port := f.l4.TCP.destination_port
	apiserver(f, port)
	msg := sprintf("%s in %s connected to the API server at %s:%d", [f.process.binary, events.container(f.process), f.IP.destination, port])
}

apiserver(_, 6443)

apiserver(f, 443) if {
	some l in f.destination.labels
	l in apiserver_labels
}

apiserver(f, 443) if startswith(f.destination.pod_name, "kube-apiserver")
