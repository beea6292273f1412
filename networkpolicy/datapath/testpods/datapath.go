package testpods

import (
	"context"
	"sync"
	"testing"

	"github.com/cilium/ebpf/rlimit"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/identity/cgroup"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
)

// Require gates a datapath test: privileged, with the cgroup hooks and the
// ring buffer. It returns the cgroup v2 root.
func Require(t testing.TB) string {
	t.Helper()
	kerneltest.Require(t)
	for _, f := range []kprobes.Feature{kprobes.FeatureCgroupConnect4, kprobes.FeatureCgroupSendmsg4, kprobes.FeatureCgroupSKB, kprobes.FeatureRingbuf} {
		kerneltest.SkipIfNotSupported(t, f)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	root, err := cgroup.Mountpoint()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// Workloads is the workload source of tests: pods with the cgroups of
// their endpoints.
type Workloads struct {
	mu   sync.Mutex
	pods []datapath.Pod
}

var _ datapath.WorkloadSource = (*Workloads)(nil)

// Pods implements datapath.WorkloadSource.
func (w *Workloads) Pods(context.Context) ([]datapath.Pod, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]datapath.Pod(nil), w.pods...), nil
}

// Set makes the pods of res the workloads, each in the cgroup of the
// endpoint of the same namespace/name.
func (w *Workloads) Set(res *networkpolicy.Resources, eps map[string]*Endpoint) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pods = nil
	for _, p := range res.Pods {
		dp := datapath.Pod{Pod: *p}
		if ep := eps[p.Key()]; ep != nil {
			dp.CgroupIDs = []uint64{ep.CgroupID}
		}
		w.pods = append(w.pods, dp)
	}
}

// NewDatapath loads and attaches a datapath at root, closed when the test
// ends. rate is Config.RecordsPerSecond.
func NewDatapath(t testing.TB, root string, src datapath.WorkloadSource, rate int) *datapath.Datapath {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	d, err := datapath.New(datapath.Config{Workloads: src, CgroupRoot: root, RecordsPerSecond: rate}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Load(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close datapath: %v", err)
		}
	})
	return d
}

// Recorder collects the datapath's verdict records.
type Recorder struct {
	mu   sync.Mutex
	list []datapath.Record
}

// Record starts collecting until the test ends.
func Record(t testing.TB, d *datapath.Datapath) *Recorder {
	t.Helper()
	rd, err := d.Records()
	if err != nil {
		t.Fatal(err)
	}
	r := &Recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			rec, err := rd.Read()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.list = append(r.list, rec)
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { rd.Close(); <-done })
	return r
}

// Take returns the records collected so far and forgets them.
func (r *Recorder) Take() []datapath.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.list
	r.list = nil
	return out
}
