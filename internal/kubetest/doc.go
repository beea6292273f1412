// Package kubetest runs a real Kubernetes API server for tests: etcd and
// kube-apiserver as child processes on loopback, with certificates made
// here, RBAC authorization and a service-account signing key, and hands
// out client configurations for the admin and for impersonated users.
//
// Tests that use it are named TestKube* and run in the Kubernetes tier
// (make test-kube, which builds kube-apiserver with
// scripts/kube-apiserver.sh and sets VIGIL_KUBE=1). Elsewhere they skip,
// naming what is missing; with VIGIL_KUBE=1 a missing binary fails them.
//
// Each Server is two processes the test owns: Start registers their end
// (by PID) as a cleanup of the test, so a server never outlives it.
package kubetest
