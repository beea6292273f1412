package identity

import (
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/identity/cri"
	"github.com/vigilsec/vigil/identity/kube"
	"github.com/vigilsec/vigil/identity/source"
	"github.com/vigilsec/vigil/identity/workloadfile"
	"github.com/vigilsec/vigil/internal/kubeclient"
)

// buildSources makes the sources cfg selects. Auto-detected sources that
// are absent are skipped with a log line; explicitly requested ones that
// cannot be set up are errors.
func buildSources(cfg *Config, log logrus.FieldLogger) ([]source.Source, error) {
	var out []source.Source
	endpoints := cfg.CRIEndpoints
	switch {
	case len(endpoints) == 1 && endpoints[0] == CRINone:
		endpoints = nil
	case len(endpoints) == 0:
		endpoints = cri.Detect("")
		if len(endpoints) == 0 {
			log.WithField(fieldSource, SourceCRI).Info("no container runtime socket found; pods are known only from the Kubernetes API and Workload files (set --cri-endpoint)")
		}
	}
	for _, ep := range endpoints {
		c, err := cri.Dial(ep)
		if err != nil {
			return nil, fmt.Errorf("container runtime %s: %w", ep, err)
		}
		name := SourceCRI
		if len(endpoints) > 1 {
			name = SourceCRI + ":" + ep
		}
		log.WithFields(logrus.Fields{fieldSource: name, "endpoint": ep}).Info("reading pods from the container runtime")
		out = append(out, cri.NewSource(name, c, cri.Options{PollInterval: cfg.CRIPollInterval, Timeout: cfg.CRITimeout}))
	}

	useKube := cfg.KubernetesEnabled()
	if useKube {
		client, err := kubeclient.New(cfg.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubernetes client: %w", err)
		}
		node := cfg.nodeName()
		log.WithFields(logrus.Fields{fieldSource: SourceKubernetes, "node": node}).Info("reading this node's pods from the Kubernetes API")
		out = append(out, kube.NewSource(SourceKubernetes, client, kube.Options{NodeName: node, Resync: cfg.KubeResync}))
	}

	if len(cfg.WorkloadFiles) > 0 {
		out = append(out, workloadfile.NewSource(SourceWorkloads, cfg.WorkloadFiles))
	}
	return out, nil
}

// KubernetesEnabled says whether the Kubernetes API is used: on, or auto in
// a cluster or with a kubeconfig.
func (c *Config) KubernetesEnabled() bool {
	return c.Kubernetes == KubernetesOn || (c.Kubernetes == KubernetesAuto && (c.Kubeconfig != "" || kubeclient.InCluster()))
}
