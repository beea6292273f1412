package relay

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"

	"github.com/vigilsec/vigil/internal/kubeclient"
)

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// Discovery tells the relay which peers there are, calling update with
// the whole list whenever it changes, until ctx ends.
type Discovery interface {
	Run(ctx context.Context, update func([]Peer)) error
}

// Static is a fixed list of peers.
type Static []Peer

// Run reports the list once and waits for ctx.
func (s Static) Run(ctx context.Context, update func([]Peer)) error {
	update(slices.Clone(s))
	<-ctx.Done()
	return nil
}

// Kubernetes finds the agents as the running pods that match Selector in
// Namespace; a pod's node names the peer and its IP with Port is the
// address.
type Kubernetes struct {
	Client    dynamic.Interface
	Namespace string
	Selector  string
	Port      int
}

// Run watches the pods (an informer) and reports the peers on every change.
func (k *Kubernetes) Run(ctx context.Context, update func([]Peer)) error {
	sel, err := labels.Parse(k.Selector)
	if err != nil {
		return fmt.Errorf("--peer-selector: %w", err)
	}
	inf := kubeclient.Dynamic(k.Client, podsGVR, k.Namespace, 10*time.Minute, func(o *metav1.ListOptions) { o.LabelSelector = sel.String() })
	kick := make(chan struct{}, 1)
	notify := func(any) {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: notify, DeleteFunc: notify, UpdateFunc: func(_, n any) { notify(n) },
	}); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		inf.RunWithContext(ctx)
	}()
	defer func() { <-done }()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil
	}
	var last []Peer
	report := func() {
		var pods []*unstructured.Unstructured
		for _, o := range inf.GetStore().List() {
			// The fake API (and a server ignoring the selector) may
			// send other pods: the selector is checked here too.
			if u, ok := o.(*unstructured.Unstructured); ok && sel.Matches(labels.Set(u.GetLabels())) {
				pods = append(pods, u)
			}
		}
		peers := peersOf(pods, k.Port)
		if !slices.Equal(peers, last) {
			last = peers
			update(slices.Clone(peers))
		}
	}
	report()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
			report()
		}
	}
}

// peersOf turns the agents' pods into peers: running, with an IP and a
// node, sorted by node.
func peersOf(pods []*unstructured.Unstructured, port int) []Peer {
	var out []Peer
	for _, p := range pods {
		phase, _, _ := unstructured.NestedString(p.Object, "status", "phase")
		ip, _, _ := unstructured.NestedString(p.Object, "status", "podIP")
		node, _, _ := unstructured.NestedString(p.Object, "spec", "nodeName")
		if phase != "Running" || ip == "" || node == "" || p.GetDeletionTimestamp() != nil {
			continue
		}
		out = append(out, Peer{Name: node, Address: net.JoinHostPort(ip, strconv.Itoa(port))})
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	return out
}
