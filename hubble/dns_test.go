package hubble

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/encode"
)

func dnsEvent(r *event.DNS) *event.Event {
	f := &event.Flow{Phase: event.FlowPacket, Verdict: event.VerdictForwarded, Protocol: event.ProtoUDP,
		Direction: event.DirectionEgress, Count: 1, DNS: r,
		Source: netip.MustParseAddr("10.0.0.5"), Destination: netip.MustParseAddr("10.96.0.10"),
		SourcePort: 40000, DestinationPort: 53}
	if r.Response {
		f.IsReply = true
		f.Source, f.Destination = f.Destination, f.Source
		f.SourcePort, f.DestinationPort = f.DestinationPort, f.SourcePort
	}
	return &event.Event{Type: event.TypeFlow, Time: time.Unix(1700000000, 0).UTC(), Flow: f}
}

// A DNS flow is Hubble's L7 DNS flow through the Observer API, and the
// JSON stream writes its l7 member exactly as Hubble's JSON (protobuf's
// mapping with the proto field names) writes that flow's.
func TestConvertDNS(t *testing.T) {
	for _, r := range []*event.DNS{
		{Query: "api.example.com.", QTypes: []string{"A"}},
		{Response: true, LatencyNS: 81934, Query: "www.example.com.", QTypes: []string{"AAAA"},
			IPs: []netip.Addr{netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("2001:db8::6")}, TTL: 20,
			CNAMEs: []string{"edge.cdn.example.net."}, RRTypes: []string{"CNAME", "AAAA"}},
		{Response: true, LatencyNS: 1, Query: "nope.example.com.", QTypes: []string{"A"}, RCode: 3},
	} {
		ev := dnsEvent(r)
		out := NewConverter("node-a", nil).Convert(ev)
		wantType := flowpb.L7FlowType_REQUEST
		if r.Response {
			wantType = flowpb.L7FlowType_RESPONSE
		}
		if out.GetType() != flowpb.FlowType_L7 || out.GetL7().GetType() != wantType || out.GetL7().GetDns().GetQuery() != r.Query ||
			out.GetL7().GetLatencyNs() != r.LatencyNS || out.GetL7().GetDns().GetRcode() != uint32(r.RCode) {
			t.Errorf("%+v: converted to %v", r, out)
		}
		if out.GetSummary() != encode.DNSSummary(r) {
			t.Errorf("summary %q, want %q", out.GetSummary(), encode.DNSSummary(r))
		}
		hubbleJSON, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(out.GetL7())
		if err != nil {
			t.Fatal(err)
		}
		var want, got struct {
			L7 any `json:"l7"`
		}
		if err := json.Unmarshal(hubbleJSON, &want.L7); err != nil {
			t.Fatal(err)
		}
		line := encode.AppendJSON(nil, ev, "node-a", nil)
		var doc struct {
			Flow json.RawMessage `json:"flow"`
		}
		if err := json.Unmarshal(line, &doc); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if err := json.Unmarshal(doc.Flow, &got); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("l7 of the JSON stream differs from Hubble's (-hubble +stream):\n%s", d)
		}
	}
	if s := encode.DNSSummary(&event.DNS{Response: true, Query: "nope.example.com.", QTypes: []string{"A"}, RCode: 3}); s != "DNS Answer RCode: NXDOMAIN TTL: 0 (nope.example.com. A)" {
		t.Errorf("NXDOMAIN summary %q", s)
	}
}

// Flows to an address the local end resolved carry the names.
func TestConvertDestinationNames(t *testing.T) {
	ev := dnsEvent(&event.DNS{Query: "x."})
	ev.Flow.DNS = nil
	ev.Flow.DestinationNames = []string{"api.example.com"}
	out := NewConverter("node-a", nil).Convert(ev)
	if out.GetType() != flowpb.FlowType_L3_L4 || cmp.Diff([]string{"api.example.com"}, out.GetDestinationNames()) != "" {
		t.Errorf("converted to %v", out)
	}
}

// The hubble CLI, unchanged, shows DNS flows as Hubble's own: --protocol
// dns selects them, and the compact view prints the DNS summary.
func TestHubbleCLIDNS(t *testing.T) {
	bin := hubbleCLI(t)
	store := newStore(t, 64)
	c := NewConverter("node-a", nil)
	fill(store, c, 2)
	for _, r := range []*event.DNS{
		{Query: "api.example.com.", QTypes: []string{"A"}},
		{Response: true, LatencyNS: 81934, Query: "api.example.com.", QTypes: []string{"A"},
			IPs: []netip.Addr{netip.MustParseAddr("203.0.113.10")}, TTL: 120, RRTypes: []string{"A"}},
	} {
		store.Put(c.Convert(dnsEvent(r)))
	}
	_, addr := serve(t, store)

	out := hubble(t, bin, addr, "observe", "--last", "10", "--protocol", "dns", "-o", "json")
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct {
			Flow struct {
				L7 struct {
					Type string `json:"type"`
					DNS  struct {
						Query string   `json:"query"`
						IPs   []string `json:"ips"`
					} `json:"dns"`
				} `json:"l7"`
			} `json:"flow"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		got = append(got, r.Flow.L7.Type+" "+r.Flow.L7.DNS.Query+" "+strings.Join(r.Flow.L7.DNS.IPs, ","))
	}
	if d := cmp.Diff([]string{"REQUEST api.example.com. ", "RESPONSE api.example.com. 203.0.113.10"}, got); d != "" {
		t.Errorf("hubble observe --protocol dns (-want +got):\n%s", d)
	}
	compact := hubble(t, bin, addr, "observe", "--last", "10", "--protocol", "dns")
	if !strings.Contains(compact, `DNS Answer "203.0.113.10" TTL: 120 (api.example.com. A)`) || strings.Contains(compact, "TCP Flags") {
		t.Errorf("hubble observe --protocol dns:\n%s", compact)
	}
}
