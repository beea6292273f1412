package hubble

import (
	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/vigilsec/vigil/event"
)

func TestFilter(t *testing.T) {
	c := NewConverter("node-a", nil)
	fwd := c.Convert(landing(tiefighter, "10.0.0.2", event.VerdictForwarded, 0))
	drop := c.Convert(landing(xwing, "10.0.0.3", event.VerdictDropped, 0))
	dns := c.Convert(landing(tiefighter, "10.0.0.2", event.VerdictForwarded, 0))
	dns.L7 = &flowpb.Layer7{Record: &flowpb.Layer7_Dns{Dns: &flowpb.DNS{Query: "deathstar.empire.svc."}}}

	tests := []struct {
		name        string
		white, bl   []*flowpb.FlowFilter
		fwd, dr, dn bool
	}{
		{"no filter", nil, nil, true, true, true},
		{"verdict", []*flowpb.FlowFilter{{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}}}, nil, false, true, false},
		{"blacklist verdict", nil, []*flowpb.FlowFilter{{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}}}, true, false, true},
		{"source pod prefix", []*flowpb.FlowFilter{{SourcePod: []string{"default/tie"}}}, nil, true, false, true},
		{"pod in other namespace", []*flowpb.FlowFilter{{SourcePod: []string{"kube-system/tie"}}}, nil, false, false, false},
		{"namespace only", []*flowpb.FlowFilter{{DestinationPod: []string{"default/"}}}, nil, true, true, true},
		{"label", []*flowpb.FlowFilter{{SourceLabel: []string{"org=alliance"}}}, nil, false, true, false},
		{"label with source", []*flowpb.FlowFilter{{SourceLabel: []string{"k8s:org=empire"}}}, nil, true, false, true},
		{"label set selector", []*flowpb.FlowFilter{{SourceLabel: []string{"class in (xwing, tiefighter), org!=empire"}}}, nil, false, true, false},
		{"source ip cidr", []*flowpb.FlowFilter{{SourceIp: []string{"10.0.0.3/32"}}}, nil, false, true, false},
		{"destination port", []*flowpb.FlowFilter{{DestinationPort: []string{"80"}}}, nil, true, true, true},
		{"other port", []*flowpb.FlowFilter{{DestinationPort: []string{"443"}}}, nil, false, false, false},
		{"protocol dns", []*flowpb.FlowFilter{{Protocol: []string{"DNS"}}}, nil, false, false, true},
		{"dns query", []*flowpb.FlowFilter{{DnsQuery: []string{`^deathstar\.`}}}, nil, false, false, true},
		{"both fields must match", []*flowpb.FlowFilter{{SourcePod: []string{"default/xwing"}, Verdict: []flowpb.Verdict{flowpb.Verdict_FORWARDED}}}, nil, false, false, false},
		{"any filter may match", []*flowpb.FlowFilter{{SourcePod: []string{"default/xwing"}}, {DnsQuery: []string{"."}}}, nil, false, true, true},
		{"node name glob", []*flowpb.FlowFilter{{NodeName: []string{"node-*"}}}, nil, true, true, true},
		{"node name with cluster", []*flowpb.FlowFilter{{NodeName: []string{"other/node-a"}}}, nil, false, false, false},
		{"drop reason", []*flowpb.FlowFilter{{DropReasonDesc: []flowpb.DropReason{flowpb.DropReason_POLICY_DENIED}}}, nil, false, true, false},
		{"event type drop", []*flowpb.FlowFilter{{EventType: []*flowpb.EventTypeFilter{{Type: monitorDrop}}}}, nil, false, true, false},
		{"tcp flags", []*flowpb.FlowFilter{{TcpFlags: []*flowpb.TCPFlags{{SYN: true}}}}, nil, true, true, true},
		{"tcp flags not set", []*flowpb.FlowFilter{{TcpFlags: []*flowpb.TCPFlags{{FIN: true}}}}, nil, false, false, false},
		{"workload", []*flowpb.FlowFilter{{SourceWorkload: []*flowpb.Workload{{Name: "xwing"}}}}, nil, false, true, false},
		{"direction", []*flowpb.FlowFilter{{TrafficDirection: []flowpb.TrafficDirection{flowpb.TrafficDirection_EGRESS}}}, nil, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := CompileFilter(tt.white, tt.bl)
			if err != nil {
				t.Fatal(err)
			}
			if got := [3]bool{f.Match(fwd), f.Match(drop), f.Match(dns)}; got != [3]bool{tt.fwd, tt.dr, tt.dn} {
				t.Errorf("forwarded, dropped, dns matched %v, want %v", got, [3]bool{tt.fwd, tt.dr, tt.dn})
			}
		})
	}
}

func TestFilterErrors(t *testing.T) {
	tests := []struct {
		white []*flowpb.FlowFilter
		bl    []*flowpb.FlowFilter
		want  string
	}{
		{[]*flowpb.FlowFilter{{}, {SourceIp: []string{"10.0.0.1", "not-an-ip"}}}, nil, `whitelist[1].source_ip[1]: "not-an-ip" is neither an address nor a CIDR prefix`},
		{nil, []*flowpb.FlowFilter{{DestinationLabel: []string{"a in (b"}}}, `blacklist[0].destination_label[0]: "a in (b" is not a label selector`},
		{[]*flowpb.FlowFilter{{Protocol: []string{"quic"}}}, nil, `whitelist[0].protocol[0]: "quic" is not one of`},
		{[]*flowpb.FlowFilter{{DestinationPort: []string{"http"}}}, nil, `whitelist[0].destination_port[0]: "http" is not a port number`},
		{[]*flowpb.FlowFilter{{Interface: []*flowpb.NetworkInterface{{Name: "eth0"}}}}, nil, "whitelist[0].interface: not supported"},
		{[]*flowpb.FlowFilter{{Experimental: &flowpb.FlowFilter_Experimental{CelExpression: []string{"true"}}}}, nil, "whitelist[0].experimental: not supported: CEL"},
		{[]*flowpb.FlowFilter{{DnsQuery: []string{"("}}}, nil, `whitelist[0].dns_query[0]: "(" is not a regular expression`},
		{[]*flowpb.FlowFilter{{HttpStatusCode: []string{"99"}}}, nil, `whitelist[0].http_status_code[0]: "99" is neither`},
	}
	for _, tt := range tests {
		_, err := CompileFilter(tt.white, tt.bl)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("error %v, want one containing %q", err, tt.want)
		}
	}
}
