package agent_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/vigilsec/vigil/agent"
)

// helperCmd returns the test binary as a helper process doing op.
func helperCmd(t *testing.T, op string, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	fatalIf(t, err)
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), "VIGIL_TEST_HELPER="+op)
	return cmd
}

func flowOf(pid int, dir, proto string) func(ev) bool {
	return func(e ev) bool {
		return e.get("flow") != nil && int(e.num("flow.process.pid")) == pid &&
			e.str("flow.traffic_direction") == dir && e.get("flow.l4."+proto) != nil
	}
}

// A TCP connection on loopback between two processes: each side's flow is
// attributed to its own process (the server's accept happens in softirq),
// and with start-end the end carries the byte counts.
func TestPrivTCPFlows(t *testing.T) {
	h := startAgent(t, func(c *agent.Config) { c.Flows = "start-end" })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	fatalIf(t, err)
	addr := ln.Addr().String()
	ln.Close() // the helper listens on the same port

	server := helperCmd(t, "tcp-serve-once", addr)
	fatalIf(t, server.Start())
	var client *exec.Cmd
	for i := 0; i < 100; i++ {
		client = helperCmd(t, "tcp-send", addr)
		if out, err := client.CombinedOutput(); err == nil && string(out) == "errno=0\n" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	fatalIf(t, server.Wait())
	port := ln.Addr().(*net.TCPAddr).Port

	out := h.waitFor("client flow", flowOf(client.Process.Pid, "EGRESS", "TCP"))
	if int(out.num("flow.l4.TCP.destination_port")) != port || out.str("flow.IP.destination") != "127.0.0.1" ||
		out.str("flow.verdict") != "FORWARDED" {
		t.Errorf("client flow %s", out)
	}
	in := h.waitFor("server flow", flowOf(server.Process.Pid, "INGRESS", "TCP"))
	if int(in.num("flow.l4.TCP.destination_port")) != port || int(in.num("flow.l4.TCP.source_port")) != int(out.num("flow.l4.TCP.source_port")) {
		t.Errorf("server flow %s does not mirror the client's %s", in, out)
	}
	end := h.waitFor("end of the client's connection", func(e ev) bool {
		return flowOf(client.Process.Pid, "EGRESS", "TCP")(e) && e.get("flow.bytes_sent") != nil
	})
	if fmt.Sprint(end.get("flow.bytes_sent")) != "5" {
		t.Errorf("bytes_sent %v, want the 5 bytes sent", end.get("flow.bytes_sent"))
	}
	if r := fmt.Sprint(end.get("flow.bytes_received")); r != "2" && r != "3" {
		t.Errorf("bytes_received %v, want the 2 bytes of the answer (3 counting the FIN)", r)
	}
}

func TestPrivUDPFlow(t *testing.T) {
	h := startAgent(t, nil)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	fatalIf(t, err)
	defer pc.Close()
	cmd := helperCmd(t, "udp-send", pc.LocalAddr().String())
	fatalIf(t, cmd.Run())
	e := h.waitFor("UDP flow", flowOf(cmd.Process.Pid, "EGRESS", "UDP"))
	if int(e.num("flow.l4.UDP.destination_port")) != pc.LocalAddr().(*net.UDPAddr).Port {
		t.Errorf("UDP flow %s", e)
	}
}
