package k8spolicies

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/vigilsec/vigil/internal/kubetest"
	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// following records the documents Run hands over, by source.
type following struct {
	*kubetest.State[map[string]string]
}

func (f following) Apply(_ Family, src string, data []byte) {
	f.Update(func(docs *map[string]string) { (*docs)[src] = string(data) })
}

func (f following) Remove(_ Family, src string) {
	f.Update(func(docs *map[string]string) { delete(*docs, src) })
}

// await waits until the document of src satisfies cond (nil: src gone).
func (f following) await(t *testing.T, what, src string, cond func([]byte) bool) []byte {
	t.Helper()
	var got []byte
	f.Await(t, time.Minute, what+" ("+src+")", func(docs map[string]string) bool {
		d, ok := docs[src]
		got = []byte(d)
		return (cond == nil && !ok) || (cond != nil && ok && cond(got))
	})
	return got
}

func holds(s string) func([]byte) bool {
	return func(d []byte) bool { return strings.Contains(string(d), s) }
}

func object(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

// parseTracing and parseNetwork read a handed-over document as the agent
// does (tracingpolicies.Parse; networkpolicy.Parse after manifest.Split).
func parseTracing(src string, data []byte) error {
	_, err := tracingpolicies.Parse(src, data)
	return err
}

func parseNetwork(src string, data []byte) error {
	docs, err := manifest.Split(src, data)
	if err != nil {
		return err
	}
	_, err = networkpolicy.Parse(docs)
	return err
}

const openatPolicy = `apiVersion: %s
kind: TracingPolicy
metadata:
  name: %s
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - index: 1
      type: string
    selectors:
    - matchArgs:
      - index: 1
        operator: Prefix
        values: [%s]
`

func tracing(apiVersion, name, prefix string) string {
	return fmt.Sprintf(openatPolicy, apiVersion, name, prefix)
}

// TestKubePolicies: policy objects created, edited and deleted on a real
// API server reach the agent's handler as the documents its parsers read;
// an edit our CRD's schema refuses never reaches it, and one the schema
// cannot catch (another project's CRD) reaches it and is refused by the
// parser with the field named.
func TestKubePolicies(t *testing.T) {
	srv := kubetest.Start(t)
	ctx := kubetest.Context(t)
	var crds []*apiextv1.CustomResourceDefinition
	files, _ := filepath.Glob("../deploy/helm/vigil/crds/*.yaml")
	for _, file := range files {
		docs, err := manifest.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			crd := &apiextv1.CustomResourceDefinition{}
			if err := d.Decode(crd); err != nil {
				t.Fatal(err)
			}
			crds = append(crds, crd)
		}
	}
	if len(crds) == 0 {
		t.Fatal("no CRDs in ../deploy/helm/vigil/crds")
	}
	// Tetragon's and Cilium's CRDs, as a cluster running them has them;
	// their schemas are theirs, so any spec is stored here.
	crds = append(crds,
		kubetest.LooseCRD("cilium.io", "v1alpha1", "TracingPolicy", "tracingpolicies", false),
		kubetest.LooseCRD("cilium.io", "v2", "CiliumNetworkPolicy", "ciliumnetworkpolicies", true))
	srv.CreateCRDs(t, crds...)

	dyn, err := dynamic.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	f := following{kubetest.NewState(map[string]string{})}
	log := logrus.New()
	log.SetOutput(io.Discard)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, dyn, f, log) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	gvr := func(group, version, resource string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
	}
	vigilTP := dyn.Resource(gvr("vigil.dev", "v1alpha1", "tracingpolicies"))
	ciliumTP := dyn.Resource(gvr("cilium.io", "v1alpha1", "tracingpolicies"))
	netpols := dyn.Resource(gvr("networking.k8s.io", "v1", "networkpolicies")).Namespace("default")
	cnps := dyn.Resource(gvr("cilium.io", "v2", "ciliumnetworkpolicies")).Namespace("default")
	create := func(r dynamic.ResourceInterface, doc string) {
		t.Helper()
		if _, err := r.Create(ctx, object(t, doc), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create: %v\n%s", err, doc)
		}
	}
	// update replaces the spec of an object with the one of doc.
	update := func(r dynamic.ResourceInterface, name, doc string) error {
		t.Helper()
		cur, err := r.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Object["spec"] = object(t, doc).Object["spec"]
		_, err = r.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	}
	remove := func(r dynamic.ResourceInterface, name string) {
		t.Helper()
		if err := r.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("vigil.dev TracingPolicy", func(t *testing.T) {
		src := "k8s:vigil.dev/TracingPolicy/etc-open"
		create(vigilTP, tracing("vigil.dev/v1alpha1", "etc-open", "/etc/"))
		d := f.await(t, "the new policy", src, holds("/etc/"))
		if err := parseTracing(src, d); err != nil {
			t.Fatalf("the handed-over document does not parse: %v\n%s", err, d)
		}
		if err := update(vigilTP, "etc-open", tracing("vigil.dev/v1alpha1", "etc-open", "/usr/")); err != nil {
			t.Fatal(err)
		}
		f.await(t, "the edited policy", src, holds("/usr/"))
		// The schema refuses an invalid edit: the agent keeps what it has.
		err := update(vigilTP, "etc-open", "spec:\n  kprobes:\n  - syscall: true\n")
		if err == nil || !strings.Contains(err.Error(), "spec.kprobes[0].call: Required value") {
			t.Fatalf("invalid edit: got %v, want the API server to refuse it naming spec.kprobes[0].call", err)
		}
		// A later object of the same kind arrives after the refused edit
		// would have: by then the first still holds its last valid spec.
		create(vigilTP, tracing("vigil.dev/v1alpha1", "later", "/var/"))
		f.await(t, "the later policy", "k8s:vigil.dev/TracingPolicy/later", holds("/var/"))
		f.await(t, "the last valid version", src, holds("/usr/"))
		remove(vigilTP, "etc-open")
		f.await(t, "the policy gone", src, nil)
	})

	t.Run("cilium.io TracingPolicy", func(t *testing.T) {
		src := "k8s:cilium.io/TracingPolicy/tetragon-open"
		create(ciliumTP, tracing("cilium.io/v1alpha1", "tetragon-open", "/etc/"))
		d := f.await(t, "the new policy", src, holds("/etc/"))
		if err := parseTracing(src, d); err != nil {
			t.Fatalf("the handed-over document does not parse: %v\n%s", err, d)
		}
		// Tetragon's schema is not ours: the invalid edit is stored and
		// handed over, and the parser refuses it by field.
		if err := update(ciliumTP, "tetragon-open", "spec:\n  kprobes:\n  - syscall: true\n    args: [{index: 0, type: nosuchtype}]\n"); err != nil {
			t.Fatal(err)
		}
		d = f.await(t, "the invalid edit", src, holds("nosuchtype"))
		err := parseTracing(src, d)
		if err == nil || !strings.Contains(err.Error(), "spec.kprobes[0]") {
			t.Fatalf("parser on the invalid edit: got %v, want an error naming spec.kprobes[0]", err)
		}
		remove(ciliumTP, "tetragon-open")
		f.await(t, "the policy gone", src, nil)
	})

	t.Run("NetworkPolicy", func(t *testing.T) {
		src := "k8s:networking.k8s.io/NetworkPolicy/default/db"
		np := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, namespace: default}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  ingress:\n  - from:\n    - podSelector: {matchLabels: {app: %s}}\n"
		create(netpols, strings.Replace(np, "%s", "web", 1))
		d := f.await(t, "the new policy", src, holds("web"))
		if err := parseNetwork(src, d); err != nil {
			t.Fatalf("the handed-over document does not parse: %v\n%s", err, d)
		}
		if err := update(netpols, "db", strings.Replace(np, "%s", "api", 1)); err != nil {
			t.Fatal(err)
		}
		f.await(t, "the edited policy", src, holds("api"))
		// The API server validates NetworkPolicies itself.
		err := update(netpols, "db", "spec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 70000}]\n")
		if err == nil || !strings.Contains(err.Error(), "spec.ingress[0].ports[0].port") {
			t.Fatalf("invalid edit: got %v, want the API server to refuse it naming spec.ingress[0].ports[0].port", err)
		}
		remove(netpols, "db")
		f.await(t, "the policy gone", src, nil)
	})

	t.Run("CiliumNetworkPolicy", func(t *testing.T) {
		src := "k8s:cilium.io/CiliumNetworkPolicy/default/db"
		create(cnps, "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: db, namespace: default}\nspec:\n  endpointSelector: {matchLabels: {app: db}}\n  ingress:\n  - fromEndpoints:\n    - matchLabels: {app: web}\n")
		d := f.await(t, "the new policy", src, holds("web"))
		if err := parseNetwork(src, d); err != nil {
			t.Fatalf("the handed-over document does not parse: %v\n%s", err, d)
		}
		if err := update(cnps, "db", "spec:\n  endpointSelector: {matchLabels: {app: db}}\n  ingress:\n  - fromEndpoints: web\n"); err != nil {
			t.Fatal(err)
		}
		d = f.await(t, "the invalid edit", src, holds("fromEndpoints: web"))
		err := parseNetwork(src, d)
		if err == nil || !strings.Contains(err.Error(), "spec.ingress[0].fromEndpoints") {
			t.Fatalf("parser on the invalid edit: got %v, want an error naming spec.ingress[0].fromEndpoints", err)
		}
		remove(cnps, "db")
		f.await(t, "the policy gone", src, nil)
	})
}
