package deploy

import (
	"fmt"
	"reflect"
	"strings"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vigilsec/vigil/tracingpolicies"
)

// The CRD schemas are generated from tracingpolicies' Go types, so that the
// API server accepts exactly the shape our parser decodes. Semantics (which
// operators, which hooks) stay the parser's: the agent reports what it
// rejects, by field path.

const group = "vigil.dev"

// crdFor builds the CRD of one policy kind.
func crdFor(kind, plural, singular string, scope apiextv1.ResourceScope, shortNames []string) *apiextv1.CustomResourceDefinition {
	spec := schemaOf(reflect.TypeFor[tracingpolicies.Spec](), "spec")
	spec.Description = "What to hook, what to read, which calls to select and what to do with them. Tetragon's TracingPolicy schema; fields Vigil does not support are accepted here and reported by name when the agent loads the policy."
	root := apiextv1.JSONSchemaProps{
		Type:        "object",
		Description: kind + " hooks kernel functions, tracepoints or LSM hooks and reports or enforces on selected calls.",
		Properties: map[string]apiextv1.JSONSchemaProps{
			"apiVersion": {Type: "string"},
			"kind":       {Type: "string"},
			"metadata":   {Type: "object"},
			"spec":       spec,
		},
		Required: []string{"spec"},
	}
	return &apiextv1.CustomResourceDefinition{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + group, Labels: map[string]string{"app.kubernetes.io/part-of": "vigil"}},
		Spec: apiextv1.CustomResourceDefinitionSpec{
			Group: group,
			Names: apiextv1.CustomResourceDefinitionNames{
				Kind: kind, ListKind: kind + "List", Plural: plural, Singular: singular, ShortNames: shortNames,
				Categories: []string{"vigil"},
			},
			Scope: scope,
			Versions: []apiextv1.CustomResourceDefinitionVersion{{
				Name: "v1alpha1", Served: true, Storage: true,
				Schema: &apiextv1.CustomResourceValidation{OpenAPIV3Schema: &root},
			}},
		},
	}
}

// schemaOf is the structural schema of a Go type as sigs.k8s.io/yaml
// decodes it.
func schemaOf(t reflect.Type, path string) apiextv1.JSONSchemaProps {
	if t == reflect.TypeFor[metav1.LabelSelector]() {
		return labelSelectorSchema()
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaOf(t.Elem(), path)
	case reflect.Struct:
		s := apiextv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextv1.JSONSchemaProps{}}
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			s.Properties[name] = schemaOf(f.Type, path+"."+name)
			if !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Bool {
				s.Required = append(s.Required, name)
			}
		}
		return s
	case reflect.Slice:
		items := schemaOf(t.Elem(), path+"[]")
		return apiextv1.JSONSchemaProps{Type: "array", Items: &apiextv1.JSONSchemaPropsOrArray{Schema: &items}}
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return apiextv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr(true)}
		}
		v := schemaOf(t.Elem(), path+"{}")
		return apiextv1.JSONSchemaProps{Type: "object", AdditionalProperties: &apiextv1.JSONSchemaPropsOrBool{Allows: true, Schema: &v}}
	case reflect.Interface:
		return apiextv1.JSONSchemaProps{XPreserveUnknownFields: ptr(true)}
	case reflect.String:
		if isIntOrString(path) {
			return apiextv1.JSONSchemaProps{XIntOrString: true, AnyOf: []apiextv1.JSONSchemaProps{{Type: "integer"}, {Type: "string"}}}
		}
		return apiextv1.JSONSchemaProps{Type: "string"}
	case reflect.Bool:
		return apiextv1.JSONSchemaProps{Type: "boolean"}
	case reflect.Int8, reflect.Int16, reflect.Int32:
		return apiextv1.JSONSchemaProps{Type: "integer", Format: "int32"}
	case reflect.Int, reflect.Int64:
		return apiextv1.JSONSchemaProps{Type: "integer", Format: "int64"}
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint, reflect.Uint64:
		return apiextv1.JSONSchemaProps{Type: "integer", Format: "int64", Minimum: ptr(0.0)}
	}
	panic(fmt.Sprintf("crd schema: %s: unsupported type %s", path, t))
}

// intOrString are the string fields that also take numbers, as our parser
// does: a signal number, a rate limit in seconds, selector values (Tetragon's
// own test policies write `values: [1, 2]`). Matched on the end of the
// field path.
var intOrStringSuffixes = []string{
	".matchActions[].argSig", ".matchActions[].rateLimit",
	".matchArgs[].values[]", ".matchReturnArgs[].values[]", ".matchNamespaces[].values[]",
}

func isIntOrString(path string) bool {
	for _, s := range intOrStringSuffixes {
		if strings.HasSuffix(path, s) {
			return true
		}
	}
	return false
}

func labelSelectorSchema() apiextv1.JSONSchemaProps {
	str := apiextv1.JSONSchemaProps{Type: "string"}
	return apiextv1.JSONSchemaProps{
		Type: "object",
		Properties: map[string]apiextv1.JSONSchemaProps{
			"matchLabels": {Type: "object", AdditionalProperties: &apiextv1.JSONSchemaPropsOrBool{Allows: true, Schema: &str}},
			"matchExpressions": {Type: "array", Items: &apiextv1.JSONSchemaPropsOrArray{Schema: &apiextv1.JSONSchemaProps{
				Type:     "object",
				Required: []string{"key", "operator"},
				Properties: map[string]apiextv1.JSONSchemaProps{
					"key":      str,
					"operator": {Type: "string", Enum: []apiextv1.JSON{{Raw: []byte(`"In"`)}, {Raw: []byte(`"NotIn"`)}, {Raw: []byte(`"Exists"`)}, {Raw: []byte(`"DoesNotExist"`)}}},
					"values":   {Type: "array", Items: &apiextv1.JSONSchemaPropsOrArray{Schema: &str}},
				},
			}}},
		},
		XMapType: ptr("atomic"),
	}
}

func ptr[T any](v T) *T { return &v }
