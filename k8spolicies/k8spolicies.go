// Package k8spolicies follows the policy objects of a Kubernetes cluster —
// TracingPolicy and TracingPolicyNamespaced (cilium.io and vigil.dev),
// NetworkPolicy, CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy —
// with informers, and hands each object to the agent as the YAML document
// its parsers read, so that a policy from the API server and the same
// policy from a file are one and the same thing.
//
// Kinds whose resource the cluster does not serve (no CRD installed) are
// skipped with a log line, not an error.
package k8spolicies

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"

	"github.com/vigilsec/vigil/internal/kubeclient"
)

// Family says which part of the agent consumes a kind.
type Family int

const (
	Tracing Family = iota + 1
	Network
)

// Kind is one policy resource to follow.
type Kind struct {
	GVR    schema.GroupVersionResource
	Kind   string
	Family Family
}

// Kinds are the policy resources Vigil follows.
var Kinds = []Kind{
	{schema.GroupVersionResource{Group: "cilium.io", Version: "v1alpha1", Resource: "tracingpolicies"}, "TracingPolicy", Tracing},
	{schema.GroupVersionResource{Group: "cilium.io", Version: "v1alpha1", Resource: "tracingpoliciesnamespaced"}, "TracingPolicyNamespaced", Tracing},
	{schema.GroupVersionResource{Group: "vigil.dev", Version: "v1alpha1", Resource: "tracingpolicies"}, "TracingPolicy", Tracing},
	{schema.GroupVersionResource{Group: "vigil.dev", Version: "v1alpha1", Resource: "tracingpoliciesnamespaced"}, "TracingPolicyNamespaced", Tracing},
	{schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"}, "NetworkPolicy", Network},
	{schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumnetworkpolicies"}, "CiliumNetworkPolicy", Network},
	{schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumclusterwidenetworkpolicies"}, "CiliumClusterwideNetworkPolicy", Network},
}

// Handler receives policy objects as YAML documents. Source names the
// object ("k8s:<group>/<Kind>/<namespace>/<name>"), so that an update
// replaces what the same source gave before.
type Handler interface {
	Apply(family Family, source string, data []byte)
	Remove(family Family, source string)
}

// SyncedHandler is a Handler told when it has received every object the
// cluster held when Run started (or when Run gave up waiting for them).
type SyncedHandler interface {
	Handler
	Synced()
}

// Run follows every kind the cluster serves until ctx ends.
func Run(ctx context.Context, client dynamic.Interface, h Handler, log logrus.FieldLogger) error {
	told := false
	var started []Kind
	var infs []cache.SharedIndexInformer
	var regs []cache.ResourceEventHandlerRegistration
	if sh, ok := h.(SyncedHandler); ok {
		defer func() {
			if !told {
				sh.Synced()
			}
		}()
	}
	for _, k := range Kinds {
		// Probe the resource first: an informer on a resource the cluster
		// does not serve retries forever.
		_, err := client.Resource(k.GVR).List(ctx, listOne)
		if err != nil {
			if apierrors.IsNotFound(err) || isNoResource(err) {
				log.WithField("resource", k.GVR.String()).Info("the cluster does not serve this policy kind; skipped")
				continue
			}
			log.WithError(err).WithField("resource", k.GVR.String()).Warn("cannot list policies; skipped")
			continue
		}
		k := k
		inf := kubeclient.Dynamic(client, k.GVR, "", 10*time.Minute, nil)
		infs = append(infs, inf)
		reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { apply(h, k, o, log) },
			UpdateFunc: func(_, o any) { apply(h, k, o, log) },
			DeleteFunc: func(o any) {
				if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
					o = d.Obj
				}
				if u, ok := o.(*unstructured.Unstructured); ok {
					h.Remove(k.Family, SourceName(k, u.GetNamespace(), u.GetName()))
				}
			},
		})
		if err != nil {
			return fmt.Errorf("%s: %w", k.GVR, err)
		}
		regs = append(regs, reg)
		started = append(started, k)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, inf := range infs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inf.RunWithContext(ctx)
		}()
	}
	for i, reg := range regs {
		// The registration has synced when its handler has received
		// every object of the first list.
		if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) && ctx.Err() == nil {
			return fmt.Errorf("sync %s", started[i].GVR)
		}
	}
	if sh, ok := h.(SyncedHandler); ok && ctx.Err() == nil {
		sh.Synced()
		told = true
	}
	log.WithField("kinds", len(started)).Info("following policies in the cluster")
	<-ctx.Done()
	return nil
}

func isNoResource(err error) bool {
	var se apierrors.APIStatus
	return errors.As(err, &se) && strings.Contains(strings.ToLower(err.Error()), "could not find the requested resource")
}

// SourceName names the source of one object.
func SourceName(k Kind, namespace, name string) string {
	group := k.GVR.Group
	if namespace == "" {
		return fmt.Sprintf("k8s:%s/%s/%s", group, k.Kind, name)
	}
	return fmt.Sprintf("k8s:%s/%s/%s/%s", group, k.Kind, namespace, name)
}

func apply(h Handler, k Kind, o any, log logrus.FieldLogger) {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return
	}
	data, err := Document(u)
	if err != nil {
		log.WithError(err).WithField("object", u.GetName()).Warn("policy object not readable")
		return
	}
	h.Apply(k.Family, SourceName(k, u.GetNamespace(), u.GetName()), data)
}

// Document returns the YAML of an object as a policy file would hold it:
// apiVersion, kind, metadata (name, namespace, labels, annotations) and
// spec, without the fields the API server adds.
func Document(u *unstructured.Unstructured) ([]byte, error) {
	md := map[string]any{"name": u.GetName()}
	if ns := u.GetNamespace(); ns != "" {
		md["namespace"] = ns
	}
	if l := u.GetLabels(); len(l) > 0 {
		md["labels"] = l
	}
	if a := u.GetAnnotations(); len(a) > 0 {
		delete(a, "kubectl.kubernetes.io/last-applied-configuration")
		if len(a) > 0 {
			md["annotations"] = a
		}
	}
	doc := map[string]any{"apiVersion": u.GetAPIVersion(), "kind": u.GetKind(), "metadata": md}
	for k, v := range u.Object {
		switch k {
		case "apiVersion", "kind", "metadata", "status":
		default:
			doc[k] = v
		}
	}
	return yaml.Marshal(doc)
}

var listOne = metav1.ListOptions{Limit: 1}

// NewClient returns a dynamic client from kubeconfig, or from the in-cluster
// configuration when kubeconfig is empty.
func NewClient(kubeconfig string) (dynamic.Interface, error) {
	cfg, err := kubeclient.RestConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return dynamic.NewForConfig(cfg)
}
