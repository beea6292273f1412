package k8spolicies

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"

	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/tracingpolicies"
)

type recorder struct {
	mu   sync.Mutex
	docs map[string][]byte
	fam  map[string]Family
}

func (r *recorder) Apply(f Family, src string, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.docs[src], r.fam[src] = data, f
}

func (r *recorder) Remove(f Family, src string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.docs, src)
}

func (r *recorder) get(src string) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.docs[src]
	return d, ok
}

func obj(apiVersion, kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind, "spec": spec,
		"status": map[string]any{"ignored": true}}}
	u.SetName(name)
	u.SetNamespace(ns)
	u.SetResourceVersion("1")
	u.SetAnnotations(map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}", "vigil.dev/policy-mode": "audit"})
	return u
}

// The fake clientset stands in for an API server (there is none here):
// objects added, updated and deleted reach the handler as documents the
// policy parsers accept.
func TestFollowsPolicies(t *testing.T) {
	listKinds := map[schema.GroupVersionResource]string{}
	for _, k := range Kinds {
		listKinds[k.GVR] = k.Kind + "List"
	}
	tp := obj("cilium.io/v1alpha1", "TracingPolicy", "", "opens", map[string]any{
		"kprobes": []any{map[string]any{"call": "sys_openat", "syscall": true,
			"args": []any{map[string]any{"index": int64(1), "type": "string"}}}},
	})
	np := obj("networking.k8s.io/v1", "NetworkPolicy", "shop", "deny-all", map[string]any{
		"podSelector": map[string]any{}, "policyTypes": []any{"Ingress"},
	})
	client := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, tp, np)
	rec := &recorder{docs: map[string][]byte{}, fam: map[string]Family{}}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Run(ctx, client, rec, log)

	wait := func(src string, want bool) []byte {
		t.Helper()
		for i := 0; i < 200; i++ {
			if d, ok := rec.get(src); ok == want {
				return d
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("%s: present=%v never reached", src, want)
		return nil
	}
	tpSrc := "k8s:cilium.io/TracingPolicy/opens"
	d := wait(tpSrc, true)
	ps, err := tracingpolicies.Parse(tpSrc, d)
	if err != nil || len(ps) != 1 || ps[0].Name != "opens" || ps[0].Hooks[0].Functions[0] != "openat" {
		t.Fatalf("tracing policy document does not parse back: %v\n%s", err, d)
	}
	npSrc := "k8s:networking.k8s.io/NetworkPolicy/shop/deny-all"
	d = wait(npSrc, true)
	docs, err := manifest.Split(npSrc, d)
	if err != nil {
		t.Fatal(err)
	}
	res, err := networkpolicy.Parse(docs)
	if err != nil || len(res.Policies) != 1 {
		t.Fatalf("network policy document does not parse back: %v\n%s", err, d)
	}
	if rec.fam[npSrc] != Network || rec.fam[tpSrc] != Tracing {
		t.Errorf("families %v", rec.fam)
	}

	gvr := Kinds[0].GVR
	tp2 := tp.DeepCopy()
	tp2.Object["spec"].(map[string]any)["kprobes"].([]any)[0].(map[string]any)["call"] = "sys_openat2"
	tp2.SetResourceVersion("2")
	if _, err := client.Resource(gvr).Update(ctx, tp2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if d, _ := rec.get(tpSrc); d != nil && string(d) != "" {
			if ps, _ := tracingpolicies.Parse(tpSrc, d); len(ps) == 1 && ps[0].Hooks[0].Functions[0] == "openat2" {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ps, _ := tracingpolicies.Parse(tpSrc, wait(tpSrc, true)); ps[0].Hooks[0].Functions[0] != "openat2" {
		t.Error("update not delivered")
	}
	if err := client.Resource(gvr).Delete(ctx, "opens", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wait(tpSrc, false)
}

func TestDocumentDropsServerFields(t *testing.T) {
	u := obj("vigil.dev/v1alpha1", "TracingPolicy", "", "p", map[string]any{})
	d, err := Document(u)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"status", "resourceVersion", "last-applied"} {
		if contains(string(d), bad) {
			t.Errorf("document keeps %s:\n%s", bad, d)
		}
	}
	if !contains(string(d), "vigil.dev/policy-mode: audit") {
		t.Errorf("document lost the annotation:\n%s", d)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
