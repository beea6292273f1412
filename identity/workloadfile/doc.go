// Package workloadfile reads standalone workloads: vigil.dev/v1alpha1
// Workload documents that name a cgroup as a workload, for hosts without
// Kubernetes and for tests.
//
//	apiVersion: vigil.dev/v1alpha1
//	kind: Workload
//	metadata:
//	  name: web
//	  namespace: shop          # default: "default"
//	  labels: {app: web}
//	spec:
//	  cgroupPath: /system.slice/web.service   # as /proc/PID/cgroup shows it
//	  ips: [192.0.2.10]
//
// Processes in the cgroup and in its descendants belong to the workload.
// Parsing is strict (FILE:LINE: field.path: message for every problem);
// Source watches the files with fsnotify and keeps a file's last good
// workloads while it holds errors.
package workloadfile
