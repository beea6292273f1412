package deploy

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/vigilsec/vigil/relay"
)

// TestRelayChart renders the chart with the relay and checks what an admin
// would: the relay's flags exist, it finds the agents' pods and only them,
// its Service selects it, the agents serve their Observer API with mTLS
// from the mounted Secret, Secrets are mounted as volumes (so rotation
// reaches the files), and the relay runs unprivileged.
func TestRelayChart(t *testing.T) {
	o := decodeAll(t, "relay", []byte(joined(render(t, defaultRelease, map[string]any{"relay": map[string]any{"enabled": true}}))))
	if len(o.deps) != 1 || len(o.svcs) != 1 {
		t.Fatalf("%d Deployments and %d Services, want the relay's one each", len(o.deps), len(o.svcs))
	}
	dep, svc, ds := o.deps[0], o.svcs[0], o.ds[0]
	c := dep.Spec.Template.Spec.Containers[0]
	if c.Args[0] != "relay" {
		t.Fatalf("relay args %v", c.Args)
	}
	fs := pflag.NewFlagSet("relay", pflag.ContinueOnError)
	cfg := relay.DefaultConfig()
	cfg.AddFlags(fs)
	if err := fs.Parse(c.Args[1:]); err != nil {
		t.Fatalf("relay args %v: %v", c.Args, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("the relay's flags do not validate: %v", err)
	}
	peers, err := labels.Parse(cfg.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !peers.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("--peer-selector %s does not match the agents' pods %v", cfg.Selector, ds.Spec.Template.Labels)
	}
	if peers.Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("--peer-selector %s matches the relay's own pods", cfg.Selector)
	}
	agents, _ := metav1LabelSelector(ds)
	if agents.Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Error("the DaemonSet's selector matches the relay's pods")
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) ||
		labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("the Service selects %v, want the relay's pods only", svc.Spec.Selector)
	}
	if cfg.Namespace != "vigil" || cfg.PeerPort != 4244 || cfg.PeerTLS.ServerName != "vigil-agent" {
		t.Errorf("relay peers: namespace %s port %d server name %s", cfg.Namespace, cfg.PeerPort, cfg.PeerTLS.ServerName)
	}

	mounts := func(ms []string, vols map[string]string, want ...string) {
		t.Helper()
		for _, w := range want {
			found := false
			for _, m := range ms {
				found = found || strings.HasPrefix(w, m+"/")
			}
			if !found {
				t.Errorf("%s is not under a mounted Secret (mounts %v)", w, ms)
			}
		}
	}
	var relayMounts []string
	relayVols := map[string]string{}
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			relayVols[v.Name] = v.Secret.SecretName
		}
	}
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" {
			t.Errorf("mount %s uses subPath: a rotated Secret would not reach it", m.Name)
		}
		if _, ok := relayVols[m.Name]; ok {
			relayMounts = append(relayMounts, m.MountPath)
		}
	}
	mounts(relayMounts, relayVols, cfg.PeerTLS.CAFile, cfg.PeerTLS.CertFile, cfg.PeerTLS.KeyFile, cfg.Auth.TokenFile, cfg.Auth.CertFile, cfg.Auth.KeyFile)
	if relayVols["relay-tls"] != "vigil-relay-tls" || relayVols["ui-token"] != "vigil-ui-token" {
		t.Errorf("relay Secrets %v", relayVols)
	}
	sc := dep.Spec.Template.Spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || c.SecurityContext.Capabilities == nil || len(c.SecurityContext.Capabilities.Add) != 0 {
		t.Error("the relay runs as root or with capabilities")
	}

	var m map[string]any
	if err := yaml.Unmarshal([]byte(o.cms["vigil"].Data["config.yaml"]), &m); err != nil {
		t.Fatal(err)
	}
	af := agentFlags()
	for k := range m {
		if af.Lookup(k) == nil {
			t.Errorf("config.yaml key %q is not an agent flag", k)
		}
	}
	if m["hubble-addr"] != "0.0.0.0:4244" {
		t.Errorf("agents' hubble-addr %v, want 0.0.0.0:4244 for the relay", m["hubble-addr"])
	}
	var agentMounts []string
	for _, mt := range ds.Spec.Template.Spec.Containers[0].VolumeMounts {
		if mt.Name == "agent-tls" {
			agentMounts = append(agentMounts, mt.MountPath)
		}
	}
	for _, k := range []string{"api-tls-cert-file", "api-tls-key-file", "api-tls-client-ca-file"} {
		v, _ := m[k].(string)
		mounts(agentMounts, nil, v)
	}
}
