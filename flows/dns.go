package flows

import (
	"sync/atomic"
	"time"

	"github.com/vigilsec/vigil/dns"
	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/observer"
	"github.com/vigilsec/vigil/process"
)

// Bounds of DNSDecoder's state.
const (
	// maxPendingQueries bounds the queries waiting for their answer (for
	// the latency of the answer).
	maxPendingQueries = 16384
	// pendingFor is how long a query waits for its answer.
	pendingFor = 30 * time.Second
	// maxStreams bounds the TCP connections followed at once.
	maxStreams = 1024
)

// DNSStats count what DNSDecoder read and what it could not report.
type DNSStats struct {
	Queries, Answers atomic.Uint64
	// Malformed: payloads that are not a DNS message (or whose capture was
	// cut short); Short: records too short to decode; StreamLost: TCP
	// streams that lost bytes.
	Malformed, Short, StreamLost atomic.Uint64
	// PendingFull: queries whose answer latency is not reported because
	// too many queries were waiting.
	PendingFull atomic.Uint64
}

type pendingKey struct {
	cookie uint64
	id     uint16
	query  string
}

type streamKey struct {
	cookie uint64
	dir    uint8
}

// DNSDecoder turns DNS records (dnsvis.bpf.c) into flows of Hubble's L7
// DNS shape, each with the process and pod of the local socket, and
// records the names of answers in Names. One goroutine uses it.
type DNSDecoder struct {
	cache *process.Cache
	sink  process.Sink
	eps   Endpoints
	pods  process.PodResolver
	names *Names

	pending map[pendingKey]uint64 // query's ktime
	streams map[streamKey]*dns.Stream
	rec     abi.DNSEvent
	Stats   DNSStats
}

// NewDNSDecoder returns a decoder. eps, pods (which pod a cgroup is, for
// sockets whose process is unknown) and names may be nil.
func NewDNSDecoder(cache *process.Cache, sink process.Sink, eps Endpoints, pods process.PodResolver, names *Names) *DNSDecoder {
	return &DNSDecoder{cache: cache, sink: sink, eps: eps, pods: pods, names: names,
		pending: map[pendingKey]uint64{}, streams: map[streamKey]*dns.Stream{}}
}

// Routes are the opcodes this decoder reads.
func (d *DNSDecoder) Routes() []observer.Route {
	return []observer.Route{{Op: abi.OpDNS, Decode: d.Handle}}
}

// Handle decodes one DNS record.
func (d *DNSDecoder) Handle(rec []byte) error {
	data, err := abi.DNS(rec, &d.rec)
	if err != nil {
		d.Stats.Short.Add(1)
		return err
	}
	r := &d.rec
	whole := r.CapLen == r.Len && int(r.CapLen) == len(data)
	if r.Protocol != event.ProtoTCP {
		d.message(r, data)
		return nil
	}
	k := streamKey{r.Cookie, r.Direction}
	s := d.streams[k]
	if s == nil {
		if len(d.streams) >= maxStreams {
			clear(d.streams)
		}
		s = &dns.Stream{}
		d.streams[k] = s
	}
	msgs, err := s.Feed(data, whole)
	if err != nil {
		d.Stats.StreamLost.Add(1)
	}
	for _, m := range msgs {
		d.message(r, m)
	}
	if s.Pending() == 0 {
		delete(d.streams, k)
	}
	return nil
}

func (d *DNSDecoder) message(r *abi.DNSEvent, b []byte) {
	m, err := dns.ParseMessage(b)
	if err != nil {
		d.Stats.Malformed.Add(1)
		return
	}
	local := addrFrom16(r.Local, r.Family)
	remote := addrFrom16(r.Remote, r.Family)
	rec := &event.DNS{Response: m.Response, Query: m.Query, QTypes: m.QTypes}
	f := &event.Flow{Phase: event.FlowPacket, Verdict: event.VerdictForwarded, Protocol: r.Protocol,
		Direction: event.DirectionEgress, Count: 1, DNS: rec}
	var localEP, remoteEP *event.Endpoint
	pk := pendingKey{r.Cookie, m.ID, m.Query}
	if m.Response {
		d.Stats.Answers.Add(1)
		rec.RCode, rec.IPs, rec.TTL, rec.CNAMEs, rec.RRTypes = m.RCode, m.IPs, m.TTL, m.CNAMEs, m.RRTypes
		if t, ok := d.pending[pk]; ok {
			delete(d.pending, pk)
			if r.Hdr.Ktime > t {
				rec.LatencyNS = r.Hdr.Ktime - t
			}
		}
		// The answer goes from the server to the socket that asked.
		f.IsReply = true
		f.Source, f.SourcePort, f.Destination, f.DestinationPort = remote, r.RemotePort, local, r.LocalPort
		localEP, remoteEP = &f.DestEndpoint, &f.SourceEndpoint
	} else {
		d.Stats.Queries.Add(1)
		d.remember(pk, r.Hdr.Ktime)
		f.Source, f.SourcePort, f.Destination, f.DestinationPort = local, r.LocalPort, remote, r.RemotePort
		localEP, remoteEP = &f.SourceEndpoint, &f.DestEndpoint
	}
	var proc, parent *event.Process
	if r.Hdr.Pid != 0 {
		proc, parent = d.cache.Get(r.Hdr.Pid)
	}
	var pod *event.Pod
	switch {
	case proc != nil:
		pod = proc.Pod
	case d.pods != nil:
		pod = d.pods.PodForCgroup(r.CgroupId)
	}
	eps := d.eps
	if eps == nil {
		eps = NodeEndpoints{}
	}
	eps.Local(pod, r.CgroupId, local, localEP)
	eps.Remote(remote, remoteEP)
	t := d.cache.Clock().Wall(r.Hdr.Ktime)
	if m.Response && m.RCode == 0 {
		d.names.Learn(OwnerOf(pod, r.CgroupId), m.Query, m.IPs, time.Duration(m.TTL)*time.Second, t)
	}
	d.sink.Export(&event.Event{Type: event.TypeFlow, Time: t, Process: proc, Parent: parent, Flow: f})
}

// remember notes a query's time for its answer's latency; when too many
// wait, those older than pendingFor go.
func (d *DNSDecoder) remember(k pendingKey, ktime uint64) {
	if len(d.pending) >= maxPendingQueries {
		for pk, t := range d.pending {
			if ktime < t || ktime-t > uint64(pendingFor) {
				delete(d.pending, pk)
			}
		}
		if len(d.pending) >= maxPendingQueries {
			d.Stats.PendingFull.Add(1)
			return
		}
	}
	d.pending[k] = ktime
}
