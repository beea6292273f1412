// Package kubeclient is how Vigil talks to the Kubernetes API: the client
// configuration (kubeconfig or in-cluster) and informers over the dynamic
// and metadata clients.
//
// It deliberately avoids client-go's typed clientset and informer
// factories: they link (and initialise at start-up) every API group's
// types, clients and listers, which costs the agent about 9 MiB of
// resident memory for the two or three resources it reads. Pods are read
// through the dynamic client and converted to k8s.io/api/core/v1 types;
// objects of which only labels and owners matter (namespaces, ReplicaSets,
// Jobs) through the metadata client.
package kubeclient
