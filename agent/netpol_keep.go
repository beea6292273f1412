package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/networkpolicy/datapath"
)

// netpolPinSubdir is where, under --bpf-pin-dir, the network-policy
// datapath keeps its links with --keep-enforcement-on-exit (see
// datapath.Config.LinkPinDir).
const netpolPinSubdir = "netpol"

func netpolPinDir(bpfPinDir string) string { return filepath.Join(bpfPinDir, netpolPinSubdir) }

// netpolKeep follows the hand-over of the network-policy programs an
// earlier run left attached: whether they still enforce, and what this
// run took over from them (logged by the datapath).
type netpolKeep struct {
	inherited prometheus.Gauge
	adopted   prometheus.Gauge
	// lost counts the verdict records the earlier programs wrote while
	// no agent read them (no_agent).
	lost func(uint64)
	done bool
	// hold, when not nil, keeps the earlier programs enforcing until it
	// is closed: until the cluster's network policies are read, this
	// run's would lack them.
	hold chan struct{}
}

func newNetpolKeep(reg prometheus.Registerer) (*netpolKeep, error) {
	k := &netpolKeep{
		inherited: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_netpol_inherited_programs_enforcing",
			Help: "1 while the network-policy programs an earlier run kept (--keep-enforcement-on-exit) enforce its policies, until this run's first apply replaces them; 0 otherwise."}),
		adopted: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_netpol_programs_adopted",
			Help: "Network-policy hooks whose pinned program of an earlier run this run replaced (bpf_link_update) when it took over."}),
	}
	if reg == nil {
		return k, nil
	}
	for _, c := range []prometheus.Collector{k.inherited, k.adopted} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("network policy metrics: %w", err)
		}
	}
	return k, nil
}

// held tells whether the earlier programs must still enforce whatever
// this run could apply.
func (k *netpolKeep) held(dp *datapath.Datapath) bool {
	if k.hold == nil || !dp.Adopting() {
		return false
	}
	select {
	case <-k.hold:
		return false
	default:
		k.inherited.Set(1)
		return true
	}
}

// releaseAfter lets the manager take over once synced is closed (the
// cluster's network policies are read) or after wait, and asks for an
// apply.
func (m *netpolManager) releaseAfter(ctx context.Context, synced <-chan struct{}, wait time.Duration) {
	select {
	case <-synced:
	case <-time.After(wait):
		if m.dp.Adopting() {
			m.log.WithField("waited", wait).Warn("the cluster's network policies are not all read yet; taking over from the kept programs without them")
		}
	case <-ctx.Done():
		return
	}
	close(m.keep.hold)
	m.changed()
}

// observe records the state of the hand-over after an apply.
func (k *netpolKeep) observe(dp *datapath.Datapath, log logrus.FieldLogger) {
	if k.done {
		return
	}
	if dp.Adopting() {
		k.inherited.Set(1)
		log.Warn("the network-policy programs of an earlier run keep enforcing its policies until an apply succeeds")
		return
	}
	k.inherited.Set(0)
	k.done = true
	ad := dp.Adopted()
	if ad == nil {
		return
	}
	k.adopted.Set(float64(ad.Links))
	if ad.RecordsUnread > 0 && k.lost != nil {
		k.lost(ad.RecordsUnread)
	}
}

// removeNetpolKept removes the network-policy programs an earlier run kept
// in dir, for a run that enforces no network policy.
func removeNetpolKept(dir string, log logrus.FieldLogger) {
	n, err := datapath.RemoveKept(dir)
	switch {
	case err != nil:
		log.WithError(err).Warn("remove the network-policy programs an earlier run kept")
	case n > 0:
		log.WithField("pins_removed", n).Warn("removed the network-policy programs an earlier run kept: this run enforces no network policy")
	}
}
