package hubble

import (
	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/vigilsec/vigil/event"
)

// FuzzCompileFilter: any filter a client sends either compiles, and then
// matches flows without panicking, or is refused with an error naming
// where it is wrong.
func FuzzCompileFilter(f *testing.F) {
	for _, s := range []string{
		`{"source_pod":["default/xwing"],"verdict":["DROPPED"]}`,
		`{"source_label":["k8s:org in (empire, alliance)","!reserved:world"]}`,
		`{"destination_ip":["10.0.0.0/8","::1"],"destination_port":["80"]}`,
		`{"node_name":["cluster/node-*"],"protocol":["tcp","dns"],"dns_query":["^death"]}`,
		`{"http_status_code":["4+"],"tcp_flags":[{"SYN":true}],"event_type":[{"type":1}]}`,
		`{"source_fqdn":["*.empire.svc"],"source_workload":[{"name":"xwing"}]}`,
	} {
		f.Add(s)
	}
	conv := NewConverter("node-a", nil)
	flows := []*flowpb.Flow{conv.Convert(landing(xwing, "10.0.0.3", event.VerdictDropped, 0)),
		conv.Convert(landing(tiefighter, "10.0.0.2", event.VerdictForwarded, 0))}
	f.Fuzz(func(t *testing.T, js string) {
		var ff flowpb.FlowFilter
		if protojson.Unmarshal([]byte(js), &ff) != nil {
			return
		}
		fl, err := CompileFilter([]*flowpb.FlowFilter{&ff}, nil)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "whitelist[0].") {
				t.Errorf("error %q does not say where", err)
			}
			return
		}
		for _, x := range flows {
			fl.Match(x)
		}
	})
}
