package kubeclient

import (
	"errors"
	"fmt"
	"os"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const tokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// InCluster reports whether the process runs in a Kubernetes pod with a
// service account: the in-cluster configuration can work.
func InCluster() bool {
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return false
	}
	_, err := os.Stat(tokenFile)
	return err == nil
}

// Clients are the two clients Vigil reads the API with.
type Clients struct {
	Dynamic  dynamic.Interface
	Metadata metadata.Interface
}

// New returns the clients of kubeconfig, or of the in-cluster
// configuration when kubeconfig is empty.
func New(kubeconfig string) (Clients, error) {
	cfg, err := RestConfig(kubeconfig)
	if err != nil {
		return Clients{}, err
	}
	d, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("kubernetes client: %w", err)
	}
	m, err := metadata.NewForConfig(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("kubernetes client: %w", err)
	}
	return Clients{Dynamic: d, Metadata: m}, nil
}

// RestConfig returns the client configuration from kubeconfig, or the
// in-cluster one when kubeconfig is empty.
func RestConfig(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
	} else {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			if errors.Is(err, rest.ErrNotInCluster) {
				return nil, fmt.Errorf("%w (give --kubeconfig, or --kubernetes=off outside a cluster)", err)
			}
			return nil, fmt.Errorf("in-cluster configuration: %w", err)
		}
	}
	cfg.UserAgent = "vigil-agent"
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 20, 40
	}
	return cfg, nil
}
