// Package conntest reads connectivity truth tables: YAML files holding
// namespaces, pods and policies plus one vigil.dev/v1alpha1
// ConnectivityTest document listing flows and the verdict each must get.
// The same tables drive the offline engine's unit tests and the datapath's
// privileged tests, so both are held to one expectation.
package conntest
