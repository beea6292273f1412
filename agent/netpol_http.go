package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/flows"
	"github.com/vigilsec/vigil/identity/cgroup"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
	"github.com/vigilsec/vigil/networkpolicy/httpproxy"
)

// NetpolHTTP configures the HTTP proxy of rules.http and visibility.
type NetpolHTTP struct {
	// Visibility are TCP ports whose connections from pods are proxied
	// for visibility: a flow per request.
	Visibility []uint16
	// ProxyPort is where the proxy listens in each pod's network
	// namespace (0: httpproxy.DefaultPort).
	ProxyPort uint16
	// RedactQuery leaves query strings out of the URLs of flows.
	RedactQuery bool
	// Headers are the request headers flows report.
	Headers []string
}

// httpResync is how often the proxy's listeners are brought in line with
// the pods (pods whose first process came after an apply).
const httpResync = 5 * time.Second

// netpolHTTP runs the HTTP proxy next to the datapath: it listens in the
// network namespaces of the node's pods while some rules.http or a
// visibility port is in force, and turns what the proxy sees into flow
// events and metrics.
type netpolHTTP struct {
	m       *netpolManager
	p       *httpproxy.Proxy
	metrics *httpproxy.Metrics
	opener  *cgroup.Opener
	root    string
	vis     bool
	log     logrus.FieldLogger
}

func newNetpolHTTP(m *netpolManager, cfg NetpolHTTP, cgroupRoot string, reg prometheus.Registerer, log logrus.FieldLogger) (*netpolHTTP, error) {
	h := &netpolHTTP{m: m, vis: len(cfg.Visibility) > 0, log: log}
	var err error
	if h.metrics, err = httpproxy.NewMetrics(reg); err != nil {
		return nil, err
	}
	if cgroupRoot == "" {
		if cgroupRoot, err = cgroup.Mountpoint(); err != nil {
			return nil, fmt.Errorf("HTTP proxy: %w", err)
		}
	}
	h.root = cgroupRoot
	if h.opener, err = cgroup.NewOpener(cgroupRoot); err != nil {
		return nil, fmt.Errorf("HTTP proxy: %w", err)
	}
	h.p, err = httpproxy.New(httpproxy.Config{
		Port: cfg.ProxyPort, Conns: m.dp, Policy: m.dp, PodAddr: m.dp.CgroupAddr, Report: h.report,
		RedactQuery: cfg.RedactQuery, Headers: cfg.Headers,
	}, log)
	if err != nil {
		h.opener.Close()
		return nil, err
	}
	if err := m.dp.SetHTTPProxy(h.p.Port(), uint32(os.Getpid())); err != nil {
		h.opener.Close()
		return nil, err
	}
	return h, nil
}

// wanted reports whether connections may be redirected at all.
func (h *netpolHTTP) wanted() bool {
	if h.vis {
		return true
	}
	e := h.m.dp.Engine()
	return e != nil && len(networkpolicy.HTTPPorts(e.Policies())) > 0
}

// sync listens in the network namespace of every pod of the node (when
// redirects may happen) and nowhere else.
func (h *netpolHTTP) sync() {
	var nss []httpproxy.Netns
	if h.wanted() {
		seen := map[string]bool{}
		for _, w := range h.m.ids.Workloads() {
			if w.Pod == nil {
				continue
			}
			for _, id := range w.CgroupIDs {
				path, err := h.opener.Path(id)
				if err != nil {
					continue
				}
				ns, err := httpproxy.NetnsOfCgroup(filepath.Join(h.root, path))
				if err != nil {
					continue
				}
				if !seen[ns.Key] {
					seen[ns.Key] = true
					nss = append(nss, ns)
				}
				break
			}
		}
	}
	if err := h.p.SetNetns(nss); err != nil {
		h.log.WithError(err).Debug("HTTP proxy listeners")
	}
}

func (h *netpolHTTP) run(ctx context.Context) error {
	t := time.NewTicker(httpResync)
	defer t.Stop()
	for {
		h.sync()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// report exports a request as a flow event with both ends' pods and the
// client's process, and counts it.
func (h *netpolHTTP) report(pf *httpproxy.Flow) {
	f := &event.Flow{
		Verdict: pf.Verdict, Source: pf.Source.Addr(), Destination: pf.Destination.Addr(),
		Protocol: event.ProtoTCP, SourcePort: pf.Source.Port(), DestinationPort: pf.Destination.Port(),
		Direction: pf.Direction, HTTP: &pf.HTTP,
	}
	if pf.Verdict == event.VerdictDropped {
		f.DropReasonDesc = "POLICY_DENIED"
		if pf.Direction == event.DirectionIngress {
			f.IngressDeniedBy = pf.Policies
		} else {
			f.EgressDeniedBy = pf.Policies
		}
	} else {
		f.PolicyNames = pf.Policies
	}
	ev := &event.Event{Type: event.TypeFlow, Time: pf.Time.UTC(), Flow: f}
	if pf.Conn.TGID != 0 {
		ev.Process, ev.Parent = h.m.cache.Get(pf.Conn.TGID)
	}
	pod := (*event.Pod)(nil)
	if ev.Process != nil {
		pod = ev.Process.Pod
	}
	if pod == nil {
		pod, _ = h.m.ids.PodForCgroup(pf.Conn.CgroupID)
	}
	flows.FillFromPod(&f.SourceEndpoint, pod)
	h.m.eps.Remote(pf.Destination.Addr(), &f.DestEndpoint)
	f.SourceEndpoint.Identity, f.DestEndpoint.Identity = pf.From.Identity, pf.To.Identity
	h.metrics.Observe(&f.SourceEndpoint, &f.DestEndpoint, f.Verdict, f.HTTP)
	h.m.sink.Export(ev)
}

func (h *netpolHTTP) close() error {
	err := h.p.Close()
	return errors.Join(err, h.opener.Close())
}

// httpCollector exports the proxy's and the redirect's counters.
type httpCollector struct {
	p    *httpproxy.Proxy
	dp   *datapath.Datapath
	desc *prometheus.Desc
	kern *prometheus.Desc
}

func newHTTPCollector(p *httpproxy.Proxy, dp *datapath.Datapath) *httpCollector {
	return &httpCollector{p: p, dp: dp,
		desc: prometheus.NewDesc("vigil_http_proxy_events_total", "What the HTTP proxy did with connections and requests, by event (refusals by reason).", []string{"event"}, nil),
		kern: prometheus.NewDesc("vigil_http_redirects_total", "Connects the datapath redirected to the HTTP proxy (redirected) or failed closed, by reason.", []string{"result"}, nil),
	}
}

func (c *httpCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc; ch <- c.kern }

func (c *httpCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	for name, v := range map[string]uint64{
		"accepted": s.Accepted, "unknown_slot": s.UnknownSlot, "no_pod": s.NoPod, "policy_denied": s.PolicyDenied,
		"dial_failed": s.DialFailed, "requests": s.Requests, "forwarded": s.Forwarded, "denied": s.Denied,
		"bad_request": s.BadRequest, "header_too_large": s.HeaderTooLarge, "smuggling": s.Smuggling,
		"header_timeout": s.HeaderTimeout, "response_timeout": s.ResponseTimeout, "upstream_error": s.UpstreamErrors,
		"passthrough": s.Passthrough, "http2": s.HTTP2,
		"http2_parsed": s.HTTP2Parsed, "http2_parse_error": s.HTTP2Errors, "http2_streams_dropped": s.HTTP2StreamsDropped,
	} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v), name)
	}
	if k, err := c.dp.HTTPStats(); err == nil {
		for name, v := range map[string]uint64{"redirected": k.Redirected, "no_proxy": k.RefusedNoProxy, "ipv6": k.RefusedIPv6,
			"bind_failed": k.RefusedBind, "no_slot": k.RefusedNoFreeSlot} {
			ch <- prometheus.MustNewConstMetric(c.kern, prometheus.CounterValue, float64(v), name)
		}
	}
}

var _ prometheus.Collector = (*httpCollector)(nil)
