package network_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/agent/agenttest"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
)

// dnsmasqOnLoopback starts Debian's dnsmasq on addr:53 answering name with
// answer (TTL ttl) and returns addr:53. Where the tier has no dnsmasq (the
// VMs), a server of github.com/miekg/dns answers the same instead; on the
// host dnsmasq is required.
func dnsmasqOnLoopback(t *testing.T, addr, name, answer string, ttl int) string {
	t.Helper()
	if _, err := exec.LookPath("dnsmasq"); err != nil && !kerneltest.OnHost() {
		return serveDNS(t, addr, name, answer, ttl)
	}
	bin := kerneltest.NeedTool(t, "dnsmasq")
	hosts := filepath.Join(t.TempDir(), "hosts")
	agenttest.FatalIf(t, os.WriteFile(hosts, []byte(answer+" "+name+"\n"), 0o644))
	cmd := exec.Command(bin, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--addn-hosts="+hosts, "--user=root",
		"--listen-address="+addr, "--bind-interfaces", "--except-interface=none", "--port=53", "--pid-file=",
		"--local-ttl="+strconv.Itoa(ttl), "--cache-size=0", "--log-facility=-")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	agenttest.FatalIf(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	server := net.JoinHostPort(addr, "53")
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", server)
		if err == nil {
			c.Close()
			return server
		}
		if i == 200 {
			t.Fatalf("dnsmasq does not listen on %s: %v\n%s", server, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A process resolves a name at a real DNS server (over UDP, then over
// TCP) and connects to the answer: the query and the answer come out as
// L7 DNS flows with the process on the local end, the answer with the
// addresses, TTL and latency, and the connection carries the name as
// destination_names. Then a pod does the same under a policy that drops
// the connect (see dnsPods.check). One agent serves both, to keep the VM
// tier short.
func TestPrivDNSVisibility(t *testing.T) {
	server := dnsmasqOnLoopback(t, "127.0.0.77", "svc.dnsvis.test", "127.0.0.78", 120)
	pods := newDNSPods(t)
	h := agenttest.StartAgent(t, func(c *agent.Config) {
		c.NetpolDNS.Visibility = true
		pods.configure(c)
	})
	ln := agenttest.Listen(t, "127.0.0.78:0")
	agenttest.Serve(t, ln)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	for _, proto := range []string{"udp", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			cmd := agenttest.HelperCmd(t, "dns-connect", server, "svc.dnsvis.test", proto, port)
			if out, err := cmd.CombinedOutput(); err != nil || string(out) != "errno=0\n" {
				t.Fatalf("helper: %v: %s", err, out)
			}
			pid := cmd.Process.Pid
			l4 := strings.ToUpper(proto)
			dnsOf := func(typ string) func(agenttest.Event) bool {
				return func(e agenttest.Event) bool {
					return e.Get("flow.l7.dns") != nil && e.Str("flow.l7.type") == typ && int(e.Num("flow.process.pid")) == pid
				}
			}
			q := h.WaitFor("the query", dnsOf("REQUEST"))
			if q.Str("flow.Type") != "L7" || q.Str("flow.l7.dns.query") != "svc.dnsvis.test." ||
				fmt.Sprint(q.Get("flow.l7.dns.qtypes")) != "[A]" || q.Str("flow.IP.destination") != "127.0.0.77" ||
				int(q.Num("flow.l4."+l4+".destination_port")) != 53 || q.Str("flow.traffic_direction") != "EGRESS" {
				t.Errorf("query flow %s", q)
			}
			a := h.WaitFor("the answer", dnsOf("RESPONSE"))
			if a.Str("flow.l7.dns.query") != "svc.dnsvis.test." || fmt.Sprint(a.Get("flow.l7.dns.ips")) != "[127.0.0.78]" ||
				int(a.Num("flow.l7.dns.ttl")) != 120 || a.Get("flow.l7.dns.rcode") != nil || a.Str("flow.l7.latency_ns") == "" ||
				a.Str("flow.IP.source") != "127.0.0.77" || !a.Get("flow.is_reply").(bool) ||
				a.Str("flow.Summary") != `DNS Answer "127.0.0.78" TTL: 120 (svc.dnsvis.test. A)` {
				t.Errorf("answer flow %s", a)
			}
			c := h.WaitFor("the connection to the answer", func(e agenttest.Event) bool {
				return agenttest.FlowOf(pid, "EGRESS", "TCP")(e) && e.Str("flow.IP.destination") == "127.0.0.78"
			})
			if fmt.Sprint(c.Get("flow.destination_names")) != "[svc.dnsvis.test]" {
				t.Errorf("connection flow without the name it was resolved from: %s", c)
			}
		})
	}
	t.Run("pod", func(t *testing.T) { pods.check(t, h) })
	if n := metricSum(t, h, "vigil_dns_messages_total"); n < 4 {
		t.Errorf("vigil_dns_messages_total = %v, want at least the 2 queries and 2 answers", n)
	}
}

func serveDNS(t *testing.T, addr, name, answer string, ttl int) string {
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, q *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(q)
		if len(q.Question) == 1 && q.Question[0].Name == mdns.Fqdn(name) && q.Question[0].Qtype == mdns.TypeA {
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Question[0].Name, Rrtype: mdns.TypeA,
				Class: mdns.ClassINET, Ttl: uint32(ttl)}, A: net.ParseIP(answer)})
		} else {
			m.Rcode = mdns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	server := net.JoinHostPort(addr, "53")
	for _, network := range []string{"udp", "tcp"} {
		started := make(chan error, 1)
		srv := &mdns.Server{Addr: server, Net: network, Handler: h, NotifyStartedFunc: func() { started <- nil }}
		go func() { started <- srv.ListenAndServe() }()
		agenttest.FatalIf(t, <-started)
		t.Cleanup(func() { srv.Shutdown() })
	}
	return server
}

// dnsPods is a client pod whose egress policy allows only DNS to a server
// pod (miekg/dns, the table of testpods.ServeDNS).
type dnsPods struct {
	client  *testpods.Endpoint
	srv     netip.Addr
	wl, pol string
}

func newDNSPods(t *testing.T) *dnsPods {
	root := testpods.Require(t)
	c := testpods.New(t, root)
	srvIP := netip.MustParseAddr("10.211.0.53")
	client := c.Add("client", []netip.Addr{netip.MustParseAddr("10.211.0.11")}, true)
	server := c.Add("dns", []netip.Addr{srvIP}, true)
	answers := netip.MustParsePrefix("10.77.0.0/16") // the table of ServeDNS: n1.fqdn.test is 10.77.0.1
	for _, r := range []string{server.RouteLocal(answers), client.RouteVia(answers, srvIP), server.ServeDNS(netip.AddrPortFrom(srvIP, 53), 300)} {
		if r != "ok" {
			t.Fatal(r)
		}
	}
	cgBase := fmt.Sprintf("/vigil-testpods-%d", os.Getpid())
	wl := agenttest.WritePolicy(t, t.TempDir(), "workloads.yaml", fmt.Sprintf(`apiVersion: vigil.dev/v1alpha1
kind: Workload
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {cgroupPath: %s/pod1, ips: [10.211.0.11]}
---
apiVersion: vigil.dev/v1alpha1
kind: Workload
metadata: {name: dns, namespace: default, labels: {app: dns}}
spec: {cgroupPath: %s/pod2, ips: [10.211.0.53]}
`, cgBase, cgBase))
	pol := agenttest.WritePolicy(t, t.TempDir(), "np.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-dns-only, namespace: default}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: dns}}}]
    ports: [{protocol: UDP, port: 53}]
`)
	return &dnsPods{client: client, srv: srvIP, wl: wl, pol: pol}
}

func (p *dnsPods) configure(cfg *agent.Config) {
	cfg.NetworkPolicies = []string{p.pol}
	cfg.Identity.WorkloadFiles = []string{p.wl}
	cfg.Identity.CRIEndpoints = []string{"none"}
	cfg.Identity.Kubernetes = "off"
}

// check: the client resolves a name and connects to the answer, which its
// policy does not allow; the answer's flow names both pods, and the
// datapath's DROPPED flow of the connect carries the name as
// destination_names.
func (p *dnsPods) check(t *testing.T, h *agenttest.Harness) {
	client, srvIP := p.client, p.srv
	target := netip.AddrPortFrom(netip.MustParseAddr("10.77.0.1"), 443)
	// The policy is in force once the client's connect is refused.
	deadline := time.Now().Add(agenttest.Timeout())
	for client.Probe("tcp", target, time.Second) != testpods.EPERM {
		if time.Now().After(deadline) {
			t.Fatal("the client's egress policy is not in force")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := client.Resolve(netip.AddrPortFrom(srvIP, 53), "n1.fqdn.test"); got != "10.77.0.1" {
		t.Fatalf("resolve: %s", got)
	}
	a := h.WaitFor("the answer", func(e agenttest.Event) bool {
		return e.Str("flow.l7.type") == "RESPONSE" && e.Str("flow.l7.dns.query") == "n1.fqdn.test."
	})
	if a.Str("flow.destination.pod_name") != "client" || a.Str("flow.source.pod_name") != "dns" {
		t.Errorf("answer flow %s: want from the dns pod to the client pod", a)
	}
	if r := client.Probe("tcp", target, time.Second); r != testpods.EPERM {
		t.Fatalf("connect after the lookup: %s, want eperm", r)
	}
	h.WaitFor("the drop of the connect, with the name", func(e agenttest.Event) bool {
		return e.Str("flow.verdict") == "DROPPED" && e.Str("flow.IP.destination") == "10.77.0.1" &&
			fmt.Sprint(e.Get("flow.destination_names")) == "[n1.fqdn.test]"
	})
}
