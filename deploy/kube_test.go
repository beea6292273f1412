package deploy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	authzv1 "k8s.io/api/authorization/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/vigilsec/vigil/internal/kubetest"
	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/k8spolicies"
)

// kubeAPI is the admin's view of a real API server: a dynamic client and
// a mapper from kinds to resources that learns new CRDs.
type kubeAPI struct {
	srv    *kubetest.Server
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newKubeAPI(t *testing.T) *kubeAPI {
	srv := kubetest.Start(t)
	dyn, err := dynamic.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	disc := memory.NewMemCacheClient(srv.Clientset(t).Discovery())
	return &kubeAPI{srv: srv, dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(disc)}
}

// resource returns the client of obj's kind, in obj's namespace.
func (k *kubeAPI) resource(obj *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := obj.GroupVersionKind()
	m, err := k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		k.mapper.Reset()
		m, err = k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := obj.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		return k.dyn.Resource(m.Resource).Namespace(ns), nil
	}
	return k.dyn.Resource(m.Resource), nil
}

// apply applies obj with server-side apply and strict field validation;
// dryRun leaves the cluster unchanged.
func (k *kubeAPI) apply(ctx context.Context, obj *unstructured.Unstructured, dryRun bool) error {
	r, err := k.resource(obj)
	if err != nil {
		return err
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		return err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: "vigil-test", FieldValidation: "Strict", Force: &force}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = r.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, opts)
	return err
}

func objectOf(t *testing.T, d *manifest.Document) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal(d.Raw(), &m); err != nil {
		t.Fatalf("%s:%d: %v", d.File, d.Line, err)
	}
	return &unstructured.Unstructured{Object: m}
}

// applyCRDs creates the chart's CRDs and waits until the API server serves
// them.
func (k *kubeAPI) applyCRDs(t *testing.T) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "crds", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs: %v", err)
	}
	var crds []*apiextv1.CustomResourceDefinition
	for _, f := range files {
		docs, err := manifest.ReadFile(f)
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
	k.srv.CreateCRDs(t, crds...)
	k.mapper.Reset()
}

// TestKubeChart applies the CRDs, the examples and the chart to a real API
// server, and checks what the agent's service account may do there.
func TestKubeChart(t *testing.T) {
	k := newKubeAPI(t)
	ctx := kubetest.Context(t)
	k.applyCRDs(t)

	t.Run("examples", func(t *testing.T) { kubeExamples(t, ctx, k) })
	t.Run("malformed", func(t *testing.T) { kubeMalformed(t, ctx, k) })
	t.Run("manifests", func(t *testing.T) { kubeManifests(t, ctx, k) })
	t.Run("rbac", func(t *testing.T) { kubeRBAC(t, ctx, k) })
}

// kubeExamples: every shipped example the cluster has a kind for is
// accepted (server-side dry run, strict field validation). Tracing
// policies of cilium.io, which Tetragon's CRDs would serve, are checked
// against ours under vigil.dev.
func kubeExamples(t *testing.T, ctx context.Context, k *kubeAPI) {
	var files []string
	for _, g := range []string{"../examples/*/*.yaml", "../tracingpolicies/testdata/tetragon/*.yaml"} {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	checked := 0
	for _, f := range files {
		docs, err := manifest.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			obj := objectOf(t, d)
			if obj.GroupVersionKind().Group == "cilium.io" && strings.HasPrefix(d.Kind, "TracingPolicy") {
				obj.SetAPIVersion("vigil.dev/v1alpha1")
			}
			if ns := obj.GetNamespace(); ns != "" {
				k.ensureNamespace(t, ctx, ns)
			}
			err := k.apply(ctx, obj, true)
			if meta.IsNoMatchError(err) {
				t.Logf("%s:%d: %s %s: no such kind in this cluster (%v)", f, d.Line, d.APIVersion, d.Kind, err)
				continue
			}
			if err != nil {
				t.Errorf("%s:%d: the API server refuses %s %q: %v", f, d.Line, d.Kind, d.Name, err)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no example checked")
	}
	t.Logf("%d example documents accepted", checked)
}

func (k *kubeAPI) ensureNamespace(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	ns := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name},
	}}
	if err := k.apply(ctx, ns, false); err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
}

// kubeMalformed: policies of the wrong shape are refused by the API
// server's validation of our CRDs, and the error names the field (a
// type mismatch or an unknown field already by server-side apply's typed
// patch, the rest by the OpenAPI schema).
func kubeMalformed(t *testing.T, ctx context.Context, k *kubeAPI) {
	tests := []struct{ name, doc, want string }{
		{"kprobes not a list", "spec:\n  kprobes: sys_openat\n", ".spec.kprobes: expected list"},
		{"call missing", "spec:\n  kprobes:\n  - syscall: true\n", "spec.kprobes[0].call: Required value"},
		{"negative index", "spec:\n  kprobes:\n  - call: sys_openat\n    args:\n    - index: -1\n      type: int\n", "spec.kprobes[0].args[0].index: Invalid value: -1: spec.kprobes[0].args[0].index in body should be greater than or equal to 0"},
		{"misspelt field", "spec:\n  kprobes:\n  - call: sys_openat\n    selecters: []\n", ".spec.kprobes[0].selecters: field not declared in schema"},
		{"bad selector operator", "spec:\n  podSelector:\n    matchExpressions:\n    - key: app\n      operator: Like\n", `spec.podSelector.matchExpressions[0].operator: Unsupported value: "Like"`},
		{"no spec", "", "spec: Required value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte("apiVersion: vigil.dev/v1alpha1\nkind: TracingPolicy\nmetadata: {name: bad}\n"+tt.doc), &obj); err != nil {
				t.Fatal(err)
			}
			err := k.apply(ctx, &unstructured.Unstructured{Object: obj}, true)
			if err == nil {
				t.Fatal("the API server accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

// kubeManifests: deploy/kubernetes/vigil.yaml (the chart with defaults,
// which TestRenderedUpToDate keeps equal to Helm's rendering) applies for
// real, the DaemonSet as a server-side dry run since no kubelet would run
// it; the chart with the relay enabled and with other values passes a dry
// run too.
func kubeManifests(t *testing.T, ctx context.Context, k *kubeAPI) {
	docs, err := manifest.ReadFile(renderedFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		dry := d.Kind == "DaemonSet" || d.Kind == "Deployment"
		if err := k.apply(ctx, objectOf(t, d), dry); err != nil {
			t.Errorf("%s:%d: the API server refuses %s %q: %v", renderedFile, d.Line, d.Kind, d.Name, err)
		}
	}
	for name, override := range map[string]map[string]any{
		"relay": {"relay": map[string]any{"enabled": true}},
	} {
		text := joined(render(t, defaultRelease, override))
		docs, err := manifest.Split(name, []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			if err := k.apply(ctx, objectOf(t, d), true); err != nil {
				t.Errorf("chart with %s: the API server refuses %s %q: %v", name, d.Kind, d.Name, err)
			}
		}
	}
}

// kubeRBAC asks the API server, for every verb on every resource of
// interest, whether the DaemonSet's service account may: exactly the reads
// the agent makes are allowed, nothing else (no secrets, no writes).
func kubeRBAC(t *testing.T, ctx context.Context, k *kubeAPI) {
	data, err := os.ReadFile(renderedFile)
	if err != nil {
		t.Fatal(err)
	}
	o := decodeAll(t, renderedFile, data)
	if len(o.ds) != 1 || len(o.sas) != 1 {
		t.Fatalf("%d DaemonSets, %d ServiceAccounts", len(o.ds), len(o.sas))
	}
	ds := o.ds[0]
	sa := ds.Spec.Template.Spec.ServiceAccountName
	if sa != o.sas[0].Name {
		t.Fatalf("DaemonSet runs as %q, the chart makes %q", sa, o.sas[0].Name)
	}
	read := []string{"get", "list", "watch"}
	// What the agent reads: identity/kube watches pods and namespaces and
	// GETs the ReplicaSets and Jobs owning pods; k8spolicies follows every
	// policy kind.
	want := map[schema.GroupResource][]string{
		{Resource: "pods"}:                       read,
		{Resource: "namespaces"}:                 read,
		{Group: "apps", Resource: "replicasets"}: {"get"},
		{Group: "batch", Resource: "jobs"}:       {"get"},
	}
	for _, kind := range k8spolicies.Kinds {
		want[kind.GVR.GroupResource()] = read
	}
	resources := []schema.GroupResource{
		{Resource: "secrets"}, {Resource: "configmaps"}, {Resource: "nodes"}, {Resource: "services"},
		{Resource: "serviceaccounts"}, {Resource: "events"}, {Resource: "endpoints"},
		{Group: "apps", Resource: "daemonsets"}, {Group: "apps", Resource: "deployments"},
		{Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
		{Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"},
		{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"},
	}
	for gr := range want {
		resources = append(resources, gr)
	}
	verbs := []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "impersonate", "escalate", "bind"}
	user := "system:serviceaccount:" + ds.Namespace + ":" + sa
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + ds.Namespace, "system:authenticated"}
	sar := k.srv.Clientset(t).AuthorizationV1().SubjectAccessReviews()
	got := map[schema.GroupResource][]string{}
	for _, gr := range resources {
		for _, ns := range []string{"", "kube-system"} {
			for _, verb := range verbs {
				r, err := sar.Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
					User: user, Groups: groups,
					ResourceAttributes: &authzv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: gr.Group, Resource: gr.Resource},
				}}, metav1.CreateOptions{})
				if err != nil {
					t.Fatalf("SubjectAccessReview %s %s: %v", verb, gr, err)
				}
				if r.Status.Allowed && ns == "" && !slices.Contains(got[gr], verb) {
					got[gr] = append(got[gr], verb)
				}
				if r.Status.Allowed && ns != "" && !slices.Contains(want[gr], verb) {
					t.Errorf("%s may %s %s in %s: %s", user, verb, gr, ns, r.Status.Reason)
				}
			}
		}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("what %s may do, cluster-wide (-needed +allowed):\n%s", user, d)
	}
	// The service account exists where the DaemonSet runs.
	if _, err := k.srv.Clientset(t).CoreV1().ServiceAccounts(ds.Namespace).Get(ctx, sa, metav1.GetOptions{}); err != nil {
		t.Errorf("service account: %v", err)
	}
}
