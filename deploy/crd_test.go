package deploy

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/vigilsec/vigil/internal/manifest"
)

var update = flag.Bool("update", false, "rewrite the generated CRDs and rendered manifests")

var crds = map[string]*apiextv1.CustomResourceDefinition{
	"helm/vigil/crds/vigil.dev_tracingpolicies.yaml": crdFor("TracingPolicy", "tracingpolicies", "tracingpolicy",
		apiextv1.ClusterScoped, []string{"vtp"}),
	"helm/vigil/crds/vigil.dev_tracingpoliciesnamespaced.yaml": crdFor("TracingPolicyNamespaced", "tracingpoliciesnamespaced", "tracingpolicynamespaced",
		apiextv1.NamespaceScoped, []string{"vtpn"}),
}

const crdHeader = "# Generated from tracingpolicies' Go types by `go test ./deploy -update`; do not edit.\n"

// TestCRDsUpToDate: the committed CRDs, kept once in the chart (Helm
// installs them from there, kubectl applies the same folder), are what the
// Go types generate.
func TestCRDsUpToDate(t *testing.T) {
	for file, crd := range crds {
		out, err := marshalCRD(crd)
		if err != nil {
			t.Fatal(err)
		}
		want := append([]byte(crdHeader), out...)
		for _, f := range []string{file} {
			if *update {
				if err := os.WriteFile(f, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is out of date with tracingpolicies' types: run go test ./deploy -update", f)
			}
		}
	}
}

// loadCRD decodes a committed CRD strictly and checks it as the API server
// would on creation.
func loadCRD(t *testing.T, file string) (*apiextensions.CustomResourceDefinition, *structuralschema.Structural) {
	t.Helper()
	docs, err := manifest.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("%s: %d documents, want 1", file, len(docs))
	}
	var v1 apiextv1.CustomResourceDefinition
	if err := docs[0].Decode(&v1); err != nil {
		t.Fatal(err)
	}
	var internal apiextensions.CustomResourceDefinition
	if err := apiextv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&v1, &internal, nil); err != nil {
		t.Fatal(err)
	}
	// The API server records the stored version on creation.
	internal.Status.StoredVersions = []string{internal.Spec.Versions[0].Name}
	if errs := crdvalidation.ValidateCustomResourceDefinition(context.Background(), &internal); len(errs) > 0 {
		t.Fatalf("%s: the API server would refuse it: %v", file, errs.ToAggregate())
	}
	s, err := structuralschema.NewStructural(openAPI(&internal))
	if err != nil {
		t.Fatal(err)
	}
	return &internal, s
}

// validate checks one object against a CRD the way the API server does
// with strict field validation: schema errors, and fields the schema would
// prune (unknown fields) as errors.
func validate(crd *apiextensions.CustomResourceDefinition, s *structuralschema.Structural, obj map[string]any) error {
	v, _, err := validation.NewSchemaValidator(openAPI(crd))
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range validation.ValidateCustomResource(field.NewPath(""), obj, v) {
		errs = append(errs, e)
	}
	pruned := pruning.PruneWithOptions(obj, s, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, p := range pruned {
		if p == "metadata" || strings.HasPrefix(p, "metadata.") {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: unknown field", p))
	}
	return errors.Join(errs...)
}

// TestCRDAcceptsExamples: every example policy, under our group, is
// accepted by the CRD of its kind.
func TestCRDAcceptsExamples(t *testing.T) {
	byKind := map[string]string{}
	for file, c := range crds {
		byKind[c.Spec.Names.Kind] = file
	}
	files, err := filepath.Glob("../examples/tracingpolicy/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example policies: %v", err)
	}
	tetragon, _ := filepath.Glob("../tracingpolicies/testdata/tetragon/*.yaml")
	for _, f := range append(files, tetragon...) {
		docs, err := manifest.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			crdFile, ok := byKind[d.Kind]
			if !ok {
				t.Logf("%s: kind %s has no CRD of ours", f, d.Kind)
				continue
			}
			t.Run(filepath.Base(f)+"/"+d.Name, func(t *testing.T) {
				crd, s := loadCRD(t, crdFile)
				var obj map[string]any
				if err := yaml.Unmarshal(d.Raw(), &obj); err != nil {
					t.Fatal(err)
				}
				obj["apiVersion"] = "vigil.dev/v1alpha1"
				if err := validate(crd, s, obj); err != nil {
					t.Errorf("%s:%d: the CRD rejects %s %q:\n%v", f, d.Line, d.Kind, d.Name, err)
				}
			})
		}
	}
}

// TestCRDRejectsBadPolicies: policies of the wrong shape are refused, with
// the field named.
func TestCRDRejectsBadPolicies(t *testing.T) {
	crd, s := loadCRD(t, "helm/vigil/crds/vigil.dev_tracingpolicies.yaml")
	tests := []struct{ name, doc, want string }{
		{"kprobes not a list", "spec:\n  kprobes: sys_openat\n", "spec.kprobes: Invalid value: \"string\": spec.kprobes in body must be of type array"},
		{"call missing", "spec:\n  kprobes:\n  - syscall: true\n", "spec.kprobes[0].call: Required value"},
		{"negative index", "spec:\n  kprobes:\n  - call: sys_openat\n    args:\n    - index: -1\n      type: int\n", "spec.kprobes[0].args[0].index: Invalid value: -1: spec.kprobes[0].args[0].index in body should be greater than or equal to 0"},
		{"misspelt field", "spec:\n  kprobes:\n  - call: sys_openat\n    selecters: []\n", "spec.kprobes[0].selecters: unknown field"},
		{"bad selector operator", "spec:\n  podSelector:\n    matchExpressions:\n    - key: app\n      operator: Like\n", "spec.podSelector.matchExpressions[0].operator: Unsupported value: \"Like\""},
		{"no spec", "metadata: {name: x}\n", "spec: Required value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte("apiVersion: vigil.dev/v1alpha1\nkind: TracingPolicy\n"+tt.doc), &obj); err != nil {
				t.Fatal(err)
			}
			err := validate(crd, s, obj)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

// marshalCRD writes a CRD as one applies it: without status and empty
// server-set metadata.
func marshalCRD(crd *apiextv1.CustomResourceDefinition) ([]byte, error) {
	b, err := yaml.Marshal(crd)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return yaml.Marshal(m)
}

// openAPI returns the CRD's schema: per version, or for all versions at
// once (as the internal type holds one shared by every version).
func openAPI(crd *apiextensions.CustomResourceDefinition) *apiextensions.JSONSchemaProps {
	if v := crd.Spec.Versions[0].Schema; v != nil {
		return v.OpenAPIV3Schema
	}
	return crd.Spec.Validation.OpenAPIV3Schema
}
