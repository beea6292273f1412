package datapath_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
)

// keepRig is a client and a server whose policies a datapath that keeps
// its programs enforces: the client may reach the server on 80 and 82
// (and on 83 with the second version), never on 81.
type keepRig struct {
	root, dir      string
	client, server *testpods.Endpoint
	serverIP       netip.Addr
	src            *testpods.Workloads
	res            *networkpolicy.Resources
	v2             []*networkpolicy.Policy
}

// keepServer83 admits the client to the server's port 83 (with the
// second version of the client's policy).
const keepServer83 = `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-83, namespace: x}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 83}]
`

func newKeepRig(t *testing.T) *keepRig {
	root := testpods.Require(t)
	dir := fmt.Sprintf("/sys/fs/bpf/vigil-test-%d-%s", os.Getpid(), strings.ToLower(t.Name()))
	if _, err := kprobes.EnsurePinDir(filepath.Dir(dir)); err != nil {
		t.Skipf("no BPF file system: %v", err)
	}
	t.Cleanup(func() {
		if _, err := datapath.RemoveKept(dir); err != nil {
			t.Error(err)
		}
	})
	cl := testpods.New(t, root)
	clientIP, serverIP := netip.MustParseAddr("198.18.0.21"), netip.MustParseAddr("198.18.0.22")
	r := &keepRig{root: root, dir: dir, serverIP: serverIP, src: &testpods.Workloads{},
		client: cl.Add("x/client", []netip.Addr{clientIP}, true),
		server: cl.Add("x/server", []netip.Addr{serverIP}, true)}
	for _, res := range []string{r.server.Listen("tcp", 80), r.server.Listen("tcp", 81), r.server.ListenEcho(82), r.server.Listen("tcp", 83)} {
		if res != "ok" {
			t.Fatal(res)
		}
	}
	pod := func(name string, ip netip.Addr) *networkpolicy.Pod {
		return &networkpolicy.Pod{Namespace: "x", Name: name, Labels: map[string]string{"app": name}, ServiceAccount: "default", IPs: []netip.Addr{ip}}
	}
	r.res = &networkpolicy.Resources{Pods: []*networkpolicy.Pod{pod("client", clientIP), pod("server", serverIP)},
		Policies: parsePolicies(t, fmt.Sprintf(churnPolicies, ""))}
	r.v2 = parsePolicies(t, fmt.Sprintf(churnPolicies, `, {port: "83", protocol: TCP}`)+keepServer83)
	r.src.Set(r.res, map[string]*testpods.Endpoint{"x/client": r.client, "x/server": r.server})
	return r
}

// open loads a datapath on the rig's pin directory.
func (r *keepRig) open(t *testing.T, keep bool, maxEntries int) *datapath.Datapath {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	d, err := datapath.New(datapath.Config{Workloads: r.src, CgroupRoot: r.root, RecordsPerSecond: -1,
		LinkPinDir: r.dir, KeepOnClose: keep, MaxPolicyEntries: maxEntries}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Load(); err != nil {
		t.Fatal(err)
	}
	return d
}

func (r *keepRig) probe(port uint16) string {
	// The probes expect a verdict at connect() or an echo, never a
	// timeout: a long one costs nothing.
	return r.client.Probe("tcp", netip.AddrPortFrom(r.serverIP, port), 10*time.Second)
}

// expect checks what the client gets on each port.
func (r *keepRig) expect(t *testing.T, when string, want map[uint16]string) {
	t.Helper()
	for _, port := range []uint16{80, 81, 83} {
		if w, ok := want[port]; ok {
			if got := r.probe(port); got != w {
				t.Errorf("%s: client to server port %d: %s, want %s", when, port, got, w)
			}
		}
	}
}

func closeDatapath(t *testing.T, d *datapath.Datapath) {
	t.Helper()
	if err := d.Close(); err != nil {
		t.Errorf("close datapath: %v", err)
	}
}

func pinCount(t *testing.T, dir string) int {
	t.Helper()
	n, err := kprobes.CountPins(dir)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var enforced = map[uint16]string{80: testpods.Allowed, 81: testpods.EPERM, 83: testpods.EPERM}

// A datapath that keeps its programs closes (as its process ends): the
// policies stay enforced and an established connection keeps working. A
// second datapath whose first apply fails leaves them in force. A third
// adopts them while the client connects over and over: no connect that
// the policies deny passes and none they allow fails, at any moment; the
// changed policy it applies is in force after it; the connection opened
// under the first still carries data. Once the pins are removed nothing
// enforces.
func TestPrivKeepHandOver(t *testing.T) {
	r := newKeepRig(t)
	ctx := context.Background()
	first := r.open(t, true, 0)
	if _, err := first.Apply(ctx, r.res); err != nil {
		t.Fatal(err)
	}
	if first.Adopting() || first.Adopted() != nil {
		t.Errorf("a datapath with no pins found adopts: %v %+v", first.Adopting(), first.Adopted())
	}
	r.expect(t, "with the first datapath", enforced)
	if got := r.client.Hold("conn", netip.AddrPortFrom(r.serverIP, 82)); got != testpods.Allowed {
		t.Fatalf("hold a connection to port 82: %s", got)
	}
	closeDatapath(t, first)
	pins := pinCount(t, r.dir)
	if pins != 7 {
		t.Errorf("%d pins in %s after close, want 7 (six links, np_flows)", pins, r.dir)
	}
	before, err := kprobes.PinnedLinks(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	r.expect(t, "after the datapath closed", enforced)
	if got := r.client.Held("conn"); got != testpods.Allowed {
		t.Errorf("held connection after the datapath closed: %s", got)
	}

	// A first apply that fails (the policy map would exceed one entry).
	failing := r.open(t, true, 1)
	if !failing.Adopting() {
		t.Error("a datapath that found pinned links is not adopting")
	}
	if _, err := failing.Apply(ctx, r.res); err == nil {
		t.Error("apply into one-entry policy maps succeeded")
	}
	if !failing.Adopting() {
		t.Error("after a failed apply the datapath no longer adopts")
	}
	r.expect(t, "after a failed first apply", enforced)
	closeDatapath(t, failing)
	r.expect(t, "after the failed datapath closed", enforced)
	if n := pinCount(t, r.dir); n != pins {
		t.Errorf("%d pins after the failed start, want %d", n, pins)
	}

	for _, w := range []struct {
		name string
		port uint16
		want string
	}{{"deny", 81, testpods.EPERM}, {"allow", 80, testpods.Allowed}} {
		// connect() of a UDP socket: decided by the connect hook alone,
		// with no timeout that a slow moment could hit.
		if got := r.client.Watch(w.name, "connect", netip.AddrPortFrom(r.serverIP, w.port), w.want); got != "ok" {
			t.Fatal(got)
		}
	}
	second := r.open(t, true, 0)
	defer closeDatapath(t, second)
	// The watches probe while the old programs enforce, across the update
	// and after it.
	waitProbes(t, r.client, 2)
	res2 := *r.res
	res2.Policies = r.v2
	t0 := time.Now()
	if _, err := second.Apply(ctx, &res2); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	waitProbes(t, r.client, 2)
	for _, name := range []string{"deny", "allow"} {
		probes, different, first, err := r.client.Unwatch(name)
		if err != nil {
			t.Fatal(err)
		}
		if different != 0 {
			t.Errorf("watch %s: %d of %d probes got another result during the hand-over (first: %s)", name, different, probes, first)
		}
		t.Logf("watch %s: %d probes, %d with another result; the first apply with the take-over took %v", name, probes, different, took)
	}
	ad := second.Adopted()
	if ad == nil {
		t.Fatal("Adopted() is nil after the first apply")
	}
	if ad.Links != 6 || ad.Attached != 0 || len(ad.Programs) != 6 || !ad.FlowsCarried || ad.Unpinned {
		t.Errorf("adoption %+v, want 6 links replaced, none attached, flows carried, pins kept", ad)
	}
	if ad.Denied == 0 {
		t.Errorf("the replaced programs counted no denied connect: %+v", ad)
	}
	r.expect(t, "after the hand-over", map[uint16]string{80: testpods.Allowed, 81: testpods.EPERM, 83: testpods.Allowed})
	if got := r.client.Held("conn"); got != testpods.Allowed {
		t.Errorf("connection held across the hand-over: %s", got)
	}
	after, err := kprobes.PinnedLinks(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("%d pinned links after the hand-over, want %d", len(after), len(before))
	}
	for i := range after {
		if after[i].Link != before[i].Link || after[i].Program == before[i].Program {
			t.Errorf("pinned link %d: program %d -> %d, link %d -> %d: want the same link with a new program",
				i, before[i].Program, after[i].Program, before[i].Link, after[i].Link)
		}
	}
	var old []kprobes.Attached
	for _, a := range before {
		old = append(old, kprobes.Attached{Program: a.Program}) // the links stay
	}
	if err := kprobes.WaitDetached(old, 10*time.Second); err != nil {
		t.Errorf("replaced programs: %v", err)
	}

	closeDatapath(t, second)
	r.expect(t, "after the second datapath closed", map[uint16]string{81: testpods.EPERM, 83: testpods.Allowed})
	n, err := datapath.RemoveKept(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	if n != pins {
		t.Errorf("RemoveKept removed %d pins, want %d", n, pins)
	}
	if _, err := os.Stat(r.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after RemoveKept: %v, want it gone", r.dir, err)
	}
	r.expect(t, "after the pins were removed", map[uint16]string{81: testpods.Allowed})
}

// waitProbes returns once the helper's watches have made n more probes
// each (they run in the helper, one after the other).
func waitProbes(t *testing.T, e *testpods.Endpoint, n int) {
	t.Helper()
	for _, name := range []string{"deny", "allow"} {
		start := e.WatchProbes(name)
		deadline := time.Now().Add(30 * time.Second)
		if start < 0 {
			t.Fatalf("watch %s: no count of probes", name)
		}
		for e.WatchProbes(name) < start+n {
			if time.Now().After(deadline) {
				t.Fatalf("watch %s made no %d probes within 30s", name, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Without KeepOnClose nothing is pinned and Close detaches; a datapath
// without it that finds pins adopts them, removes them, and detaches at
// Close.
func TestPrivKeepOff(t *testing.T) {
	r := newKeepRig(t)
	ctx := context.Background()
	plain := r.open(t, false, 0)
	if _, err := plain.Apply(ctx, r.res); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s without KeepOnClose: %v, want nothing there", r.dir, err)
	}
	r.expect(t, "without KeepOnClose", enforced)
	closeDatapath(t, plain)
	r.expect(t, "after close without KeepOnClose", map[uint16]string{81: testpods.Allowed})

	kept := r.open(t, true, 0)
	if _, err := kept.Apply(ctx, r.res); err != nil {
		t.Fatal(err)
	}
	closeDatapath(t, kept)
	off := r.open(t, false, 0)
	if _, err := off.Apply(ctx, r.res); err != nil {
		t.Fatal(err)
	}
	if ad := off.Adopted(); ad == nil || ad.Links != 6 || !ad.Unpinned {
		t.Errorf("adoption without KeepOnClose: %+v, want 6 links, unpinned", ad)
	}
	if _, err := os.Stat(r.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after an adoption without KeepOnClose: %v, want it removed", r.dir, err)
	}
	r.expect(t, "after an adoption without KeepOnClose", enforced)
	closeDatapath(t, off)
	r.expect(t, "after that datapath closed", map[uint16]string{81: testpods.Allowed})
}

func TestKeepConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  datapath.Config
		want string
	}{
		{datapath.Config{KeepOnClose: true}, "datapath config: KeepOnClose needs LinkPinDir"},
		{datapath.Config{LinkPinDir: "bpf/netpol"}, `datapath config: LinkPinDir "bpf/netpol" is not an absolute path`},
	} {
		tc.cfg.Workloads = &testpods.Workloads{}
		if _, err := datapath.New(tc.cfg, nil); err == nil || err.Error() != tc.want {
			t.Errorf("New(%+v): %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// keepUDP lets the client send to the server's UDP port 90 and admits
// nothing into the client: the server's answers pass only as replies of an
// exchange the client started.
const keepUDP = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-udp, namespace: x}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Ingress, Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: server}}}]
    ports: [{protocol: UDP, port: 90}]
`

// A UDP exchange the client started under the kept programs is still known
// to the programs that replace them: the server's answer after the
// hand-over reaches the client, whose ingress admits nothing else.
func TestPrivKeepUDPExchange(t *testing.T) {
	r := newKeepRig(t)
	ctx := context.Background()
	res := *r.res
	res.Policies = parsePolicies(t, keepUDP)
	for _, got := range []string{r.server.UDPServe(90), r.client.Listen("udp", 95)} {
		if got != "ok" {
			t.Fatal(got)
		}
	}
	server := netip.AddrPortFrom(r.serverIP, 90)
	clientPort := netip.AddrPortFrom(r.client.IPs[0], 95)
	first := r.open(t, true, 0)
	if _, err := first.Apply(ctx, &res); err != nil {
		t.Fatal(err)
	}
	exchange := func(when string) {
		t.Helper()
		if got := r.server.UDPAnswer(90); got != "ok" {
			t.Fatalf("%s: answer: %s", when, got)
		}
		if got := r.client.UDPRead("ex", 10*time.Second); got != testpods.Allowed {
			t.Errorf("%s: the server's answer to the client: %s, want it received", when, got)
		}
	}
	if got := r.client.UDPSend("ex", server); got != "ok" {
		t.Fatalf("client to the server's UDP port 90: %s", got)
	}
	exchange("with the first datapath")
	if got := r.server.Probe("udp", clientPort, time.Second); got != testpods.Timeout {
		t.Errorf("the server's datagram to the client's port 95: %s, want it dropped (timeout)", got)
	}
	// The client sends; the answer comes after the hand-over.
	if got := r.client.UDPSend("ex", server); got != "ok" {
		t.Fatalf("client to the server's UDP port 90: %s", got)
	}
	closeDatapath(t, first)
	second := r.open(t, true, 0)
	defer closeDatapath(t, second)
	if _, err := second.Apply(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if ad := second.Adopted(); ad == nil || !ad.FlowsCarried {
		t.Errorf("adoption %+v, want the UDP exchanges carried over", ad)
	}
	exchange("after the hand-over")
	if got := r.server.Probe("udp", clientPort, time.Second); got != testpods.Timeout {
		t.Errorf("after the hand-over, the server's datagram to the client's port 95: %s, want it dropped (timeout)", got)
	}
}
