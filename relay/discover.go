package relay

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

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
	Client    kubernetes.Interface
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
	f := informers.NewSharedInformerFactoryWithOptions(k.Client, 10*time.Minute, informers.WithNamespace(k.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel.String() }))
	inf := f.Core().V1().Pods()
	kick := make(chan struct{}, 1)
	notify := func(any) {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: notify, DeleteFunc: notify, UpdateFunc: func(_, n any) { notify(n) },
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		return nil
	}
	var last []Peer
	report := func() {
		pods, err := inf.Lister().Pods(k.Namespace).List(sel)
		if err != nil {
			return
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
func peersOf(pods []*corev1.Pod, port int) []Peer {
	var out []Peer
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || p.Spec.NodeName == "" || p.DeletionTimestamp != nil {
			continue
		}
		out = append(out, Peer{Name: p.Spec.NodeName, Address: net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port))})
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	return out
}
