package kubetest

import (
	"fmt"
	"testing"
	"time"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CreateCRDs creates CRDs and returns when the API server serves every
// one of them (condition Established).
func (s *Server) CreateCRDs(t testing.TB, crds ...*apiextv1.CustomResourceDefinition) {
	t.Helper()
	ctx := Context(t)
	c, err := apiextclient.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds {
		if _, err := c.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
			t.Fatalf("the API server refuses CRD %s: %v", crd.Name, err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for _, crd := range crds {
		for {
			got, err := c.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
			if err == nil && established(got) {
				break
			}
			if time.Now().After(deadline) {
				state := fmt.Sprint(err)
				if got != nil {
					state = fmt.Sprint(got.Status.Conditions)
				}
				t.Fatalf("CRD %s not established: %s", crd.Name, state)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func established(crd *apiextv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextv1.Established && c.Status == apiextv1.ConditionTrue {
			return true
		}
	}
	return false
}

// LooseCRD is the CRD of a kind whose schema does not matter to a test
// (another project's, such as Cilium's or Tetragon's): any spec is stored.
func LooseCRD(group, version, kind, plural string, namespaced bool) *apiextv1.CustomResourceDefinition {
	scope := apiextv1.ClusterScoped
	if namespaced {
		scope = apiextv1.NamespaceScoped
	}
	yes := true
	return &apiextv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + group},
		Spec: apiextv1.CustomResourceDefinitionSpec{
			Group: group, Scope: scope,
			Names: apiextv1.CustomResourceDefinitionNames{Kind: kind, Plural: plural, ListKind: kind + "List"},
			Versions: []apiextv1.CustomResourceDefinitionVersion{{
				Name: version, Served: true, Storage: true,
				Schema: &apiextv1.CustomResourceValidation{OpenAPIV3Schema: &apiextv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: &yes,
				}},
			}},
		},
	}
}
