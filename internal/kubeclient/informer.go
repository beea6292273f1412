package kubeclient

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
)

// Tweak adjusts the options of an informer's lists and watches (a field
// selector, say); nil leaves them alone.
type Tweak func(*metav1.ListOptions)

func (t Tweak) apply(o metav1.ListOptions) metav1.ListOptions {
	if t != nil {
		t(&o)
	}
	return o
}

// indexers index by namespace, as client-go's listers do.
var indexers = cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}

// Dynamic returns an informer on gvr in namespace (empty: all) whose store
// holds *unstructured.Unstructured.
func Dynamic(c dynamic.Interface, gvr schema.GroupVersionResource, namespace string, resync time.Duration, tweak Tweak) cache.SharedIndexInformer {
	r := c.Resource(gvr).Namespace(namespace)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return r.List(ctx, tweak.apply(o))
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return r.Watch(ctx, tweak.apply(o))
		},
	}
	// The client tells the reflector whether it can stream the initial
	// list as watch events (fakes cannot).
	return cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, c), &unstructured.Unstructured{}, resync, indexers)
}

// Metadata returns an informer on gvr in namespace (empty: all) whose
// store holds *metav1.PartialObjectMetadata: names, labels, owners.
func Metadata(c metadata.Interface, gvr schema.GroupVersionResource, namespace string, resync time.Duration, tweak Tweak) cache.SharedIndexInformer {
	r := c.Resource(gvr).Namespace(namespace)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return r.List(ctx, tweak.apply(o))
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return r.Watch(ctx, tweak.apply(o))
		},
	}
	return cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, c), &metav1.PartialObjectMetadata{}, resync, indexers)
}
