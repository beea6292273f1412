package network_test

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/vigilsec/vigil/agent/agenttest"

	"github.com/vigilsec/vigil/agent"
)

// A TCP connection on loopback between two processes: each side's flow is
// attributed to its own process (the server's accept happens in softirq),
// and with start-end the end carries the byte counts.
func TestPrivTCPFlows(t *testing.T) {
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Flows = "start-end" })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	agenttest.FatalIf(t, err)
	addr := ln.Addr().String()
	ln.Close() // the helper listens on the same port

	server := agenttest.HelperCmd(t, "tcp-serve-once", addr)
	agenttest.FatalIf(t, server.Start())
	var client *exec.Cmd
	for i := 0; i < 100; i++ {
		client = agenttest.HelperCmd(t, "tcp-send", addr)
		if out, err := client.CombinedOutput(); err == nil && string(out) == "errno=0\n" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	agenttest.FatalIf(t, server.Wait())
	port := ln.Addr().(*net.TCPAddr).Port

	out := h.WaitFor("client flow", agenttest.FlowOf(client.Process.Pid, "EGRESS", "TCP"))
	if int(out.Num("flow.l4.TCP.destination_port")) != port || out.Str("flow.IP.destination") != "127.0.0.1" ||
		out.Str("flow.verdict") != "FORWARDED" {
		t.Errorf("client flow %s", out)
	}
	in := h.WaitFor("server flow", agenttest.FlowOf(server.Process.Pid, "INGRESS", "TCP"))
	if int(in.Num("flow.l4.TCP.destination_port")) != port || int(in.Num("flow.l4.TCP.source_port")) != int(out.Num("flow.l4.TCP.source_port")) {
		t.Errorf("server flow %s does not mirror the client's %s", in, out)
	}
	end := h.WaitFor("end of the client's connection", func(e agenttest.Event) bool {
		return agenttest.FlowOf(client.Process.Pid, "EGRESS", "TCP")(e) && e.Get("flow.bytes_sent") != nil
	})
	if fmt.Sprint(end.Get("flow.bytes_sent")) != "5" {
		t.Errorf("bytes_sent %v, want the 5 bytes sent", end.Get("flow.bytes_sent"))
	}
	if r := fmt.Sprint(end.Get("flow.bytes_received")); r != "2" && r != "3" {
		t.Errorf("bytes_received %v, want the 2 bytes of the answer (3 counting the FIN)", r)
	}
}

// Connections of one process to the same service fold: the first is
// reported at once, the others come as one event whose count makes the
// total exact, and the metric counts what was folded.
func TestPrivRepeatedConnectionsFold(t *testing.T) {
	h := agenttest.StartAgent(t, nil)
	ln := agenttest.Listen(t, "127.0.0.1:0")
	const n = 50
	client := agenttest.HelperCmd(t, "tcp-connect-n", ln.Addr().String(), strconv.Itoa(n))
	if out, err := client.CombinedOutput(); err != nil || string(out) != "errno=0\n" {
		t.Fatalf("helper: %v: %s", err, out)
	}
	match := agenttest.FlowOf(client.Process.Pid, "EGRESS", "TCP")
	h.WaitFor("the report of the folded connections", func(e agenttest.Event) bool {
		return match(e) && e.Get("flow.count") != nil
	})
	flows := h.All(match)
	total := 0
	for _, e := range flows {
		if e.Get("flow.count") == nil {
			total++
		} else {
			total += int(e.Num("flow.count"))
		}
	}
	if total != n || len(flows) >= n {
		t.Errorf("%d flow events standing for %d connections, want fewer than %d events for exactly %d", len(flows), total, n, n)
	}
	if got := metricSum(t, h, "vigil_flows_folded_total"); got < n-1 {
		t.Errorf("vigil_flows_folded_total = %v, want at least %d", got, n-1)
	}
}

func TestPrivUDPFlow(t *testing.T) {
	h := agenttest.StartAgent(t, nil)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	agenttest.FatalIf(t, err)
	defer pc.Close()
	cmd := agenttest.HelperCmd(t, "udp-send", pc.LocalAddr().String())
	agenttest.FatalIf(t, cmd.Run())
	e := h.WaitFor("UDP flow", agenttest.FlowOf(cmd.Process.Pid, "EGRESS", "UDP"))
	if int(e.Num("flow.l4.UDP.destination_port")) != pc.LocalAddr().(*net.UDPAddr).Port {
		t.Errorf("UDP flow %s", e)
	}
}
