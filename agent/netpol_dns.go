package agent

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/networkpolicy/datapath"
)

// NetpolDNS configures what the network-policy datapath learns from DNS
// answers for toFQDNs rules.
type NetpolDNS struct {
	// MinTTL is the least time an address of an answer stays allowed (0:
	// datapath.DefaultDNSMinTTL).
	MinTTL time.Duration
	// MaxIPs is the most addresses one answer records (0: the default;
	// negative: no limit).
	MaxIPs int
	// PinDir keeps the learned addresses across restarts ("": the
	// default, datapath.DefaultPinDir; "-": not kept).
	PinDir string
	// Visibility reports every DNS query and answer of local sockets as
	// an L7 flow, and the names of answers on later flows to their
	// addresses (destination_names), with or without DNS policy. Names
	// stay for their answer's TTL, at least MinTTL.
	Visibility bool
}

func (c NetpolDNS) datapathConfig(cfg *datapath.Config) {
	cfg.DNSMinTTL, cfg.DNSMaxIPs = c.MinTTL, c.MaxIPs
	switch c.PinDir {
	case "":
		cfg.PinDir = datapath.DefaultPinDir
	case "-":
	default:
		cfg.PinDir = c.PinDir
	}
}

// dnsSweepEvery is how often expired learned addresses are deleted.
const dnsSweepEvery = 30 * time.Second

// sweepDNS deletes expired learned addresses until ctx ends, so that the
// map holds what is in force (the programs ignore expired slots anyway).
func (m *netpolManager) sweepDNS(ctx context.Context) error {
	t := time.NewTicker(dnsSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, _, err := m.dp.SweepFQDN(); err != nil {
				m.log.WithError(err).Warn("sweep learned DNS addresses")
			}
		}
	}
}

// dnsCollector exports the datapath's DNS counters and the learned
// addresses when scraped.
type dnsCollector struct {
	dp                                               *datapath.Datapath
	answers, learned, dropped, allowed, tracked, cap *prometheus.Desc
	queries, refused                                 *prometheus.Desc
}

func newDNSCollector(dp *datapath.Datapath) *dnsCollector {
	return &dnsCollector{dp: dp,
		answers: prometheus.NewDesc("vigil_netpol_dns_answers_total",
			"DNS answers to pods' queries parsed in the kernel for toFQDNs rules.", nil, nil),
		learned: prometheus.NewDesc("vigil_netpol_dns_addresses_learned_total",
			"Addresses of DNS answers recorded for toFQDNs rules.", nil, nil),
		dropped: prometheus.NewDesc("vigil_netpol_dns_dropped_total",
			"What the DNS parser did not learn, by reason: malformed (the answer was refused), truncated (longer than 4096 bytes: learned from its start), map_full (no room in the learned map), capped (beyond the addresses per answer), slot_evicted (an address learned for more names than it holds replaced the one expiring first), split (an answer over TCP not whole in one segment).", []string{"reason"}, nil),
		allowed: prometheus.NewDesc("vigil_netpol_fqdn_allowed_total",
			"Flows allowed because their address was learned for a name a toFQDNs rule allows.", nil, nil),
		tracked: prometheus.NewDesc("vigil_netpol_dns_addresses_tracked",
			"Learned (pod identity, address) pairs in force.", nil, nil),
		cap: prometheus.NewDesc("vigil_netpol_dns_map_fill_ratio",
			"Learned pairs in the map (expired ones not yet swept included) over its size.", nil, nil),
		queries: prometheus.NewDesc("vigil_netpol_dns_queries_total",
			"DNS queries of pods checked against rules.dns.", nil, nil),
		refused: prometheus.NewDesc("vigil_netpol_dns_refused_total",
			"DNS queries of pods dropped for a name no rules.dns list allows.", nil, nil),
	}
}

func (c *dnsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.answers, c.learned, c.dropped, c.allowed, c.tracked, c.cap, c.queries, c.refused} {
		ch <- d
	}
}

func (c *dnsCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.dp.Stats()
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.answers, prometheus.CounterValue, float64(st.DNSAnswers))
	ch <- prometheus.MustNewConstMetric(c.learned, prometheus.CounterValue, float64(st.DNSLearned))
	ch <- prometheus.MustNewConstMetric(c.allowed, prometheus.CounterValue, float64(st.FQDNAllowed))
	ch <- prometheus.MustNewConstMetric(c.queries, prometheus.CounterValue, float64(st.DNSQueries))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(st.DNSRefused))
	for reason, v := range map[string]uint64{"malformed": st.DNSMalformed, "truncated": st.DNSTruncated, "map_full": st.DNSMapFull,
		"capped": st.DNSCapped, "slot_evicted": st.DNSSlotEvicted, "split": st.DNSSplit} {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(v), reason)
	}
	if live, all, size, err := c.dp.FQDNFill(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.tracked, prometheus.GaugeValue, float64(live))
		ch <- prometheus.MustNewConstMetric(c.cap, prometheus.GaugeValue, float64(all)/float64(size))
	}
}
