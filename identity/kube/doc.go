// Package kube reads this node's pods from the Kubernetes API with client-go
// informers: labels, service account, addresses, ports and containers of
// every pod whose spec.nodeName is the node, the labels of their namespaces,
// and the workload that owns each pod (a Deployment through its ReplicaSet,
// a CronJob through its Job, a StatefulSet, a DaemonSet, or the pod itself).
//
// It only reads: pods and namespaces through watches, ReplicaSets and Jobs
// with GETs (cached) to resolve owners. Without permission to read those it
// falls back on the pod-template-hash naming of ReplicaSets.
package kube
