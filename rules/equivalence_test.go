package rules

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/vigilsec/vigil/event"
)

func loadDefaults(tb testing.TB) *Set {
	tb.Helper()
	set, _, err := Load(context.Background(), DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

// outcome is what evaluating one rule on one input gave.
type outcome struct {
	Alerts []string
	Err    bool
}

// regoOutcome evaluates rule i of tr in Rego alone.
func regoOutcome(tr *typeRules, i int, input ast.Value) outcome {
	m, err := regoAlerts(context.Background(), tr.rego[i], tr.rules[i], input, nil)
	var o outcome
	for _, x := range m {
		o.Alerts = append(o.Alerts, x.Description)
	}
	o.Err = err != nil
	return o
}

// equivalence evaluates every rule of set for the input of c both in Go
// and in Rego and reports the first difference; it counts the alerts
// compared and the evaluations Go left to Rego.
type equivalence struct {
	set            *Set
	alerts, punted int
	guarded        int
}

func (q *equivalence) check(c *ectx, t event.Type, input ast.Value) error {
	tr := q.set.byType[t]
	if tr == nil {
		return nil
	}
	// The index must never leave out a body that holds: every check is
	// made with the index's candidates, and the guard without them.
	cand := slices.Clone(tr.index.candidates(c))
	for i, r := range tr.rules {
		want := regoOutcome(tr, i, input)
		q.alerts += len(want.Alerts)
		p, first := tr.plans[i], tr.index.first[i]
		if !p.mayAlert(c, cand, first) {
			q.guarded++
			if len(want.Alerts) > 0 {
				return fmt.Errorf("%s: the guard fails on an input Rego alerts on (%q): %v", r.ID, want.Alerts, input)
			}
		}
		if !p.mayAlert(c, nil, 0) && len(want.Alerts) > 0 {
			return fmt.Errorf("%s: the guard (without the index) fails on an input Rego alerts on (%q): %v", r.ID, want.Alerts, input)
		}
		if !p.complete {
			continue
		}
		descs, ok := p.alerts(c, cand, first)
		if !ok {
			q.punted++
			continue
		}
		got := outcome{Alerts: slices.Clone(descs)}
		if diff := cmp.Diff(want, got); diff != "" {
			return fmt.Errorf("%s: Go and Rego differ (-rego +go):\n%s\non %v", r.ID, diff, input)
		}
	}
	return nil
}

// checkEvent compares Go and Rego on an event's typed input, and on the
// Rego value of its JSON (the offline path).
func (q *equivalence) checkEvent(ev *event.Event, node string) error {
	c := newEctx(&materializer{})
	c.view = view{ev: ev, nodeName: node}
	c.reset(c.view.root(), q.set.memo)
	input := c.mat.input(&c.view)
	if err := q.check(c, ev.Type, input); err != nil {
		return fmt.Errorf("typed input: %w", err)
	}
	c.reset(fromAST(input), q.set.memo)
	if err := q.check(c, ev.Type, input); err != nil {
		return fmt.Errorf("Rego value input: %w", err)
	}
	return nil
}

// Every default rule gives the same alerts in Go as in Rego, on the
// recorded events and on mutated copies of them that exercise each
// rule's conditions (the binaries, arguments, pods, policy arguments and
// flows the rules look for, and their near misses).
func TestGoEvaluationMatchesRego(t *testing.T) {
	q := &equivalence{set: loadDefaults(t)}
	var evs []*event.Event
	var nodes []string
	for _, lines := range [][][]byte{recorded(t), ordinary(t)} {
		e, n := recordedEvents(t, lines)
		evs, nodes = append(evs, e...), append(nodes, n...)
	}
	for i, ev := range evs {
		if err := q.checkEvent(ev, nodes[i]); err != nil {
			t.Fatal(err)
		}
	}
	recordedAlerts := q.alerts
	rng := rand.New(rand.NewPCG(1, 2))
	for range 4000 {
		i := rng.IntN(len(evs))
		ev := mutate(rng, evs[i])
		if err := q.checkEvent(ev, nodes[i]); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d alerts compared (%d on the recorded events), %d guarded out, %d left to Rego", q.alerts, recordedAlerts, q.guarded, q.punted)
	if recordedAlerts < 16 || q.alerts < 1000 || q.guarded == 0 {
		t.Errorf("%d alerts compared, %d on the recorded events, %d guarded out: the inputs do not exercise the rules", q.alerts, recordedAlerts, q.guarded)
	}
}

// Values the default rules look at, and near misses.
var (
	mutBinaries = []string{"/bin/sh", "/usr/bin/bash", "/bin/busybox", "/usr/bin/nc", "/usr/bin/ncat", "/usr/bin/socat",
		"/usr/bin/python3", "/usr/bin/python3.11", "/usr/bin/perl5.36", "/usr/bin/node", "/usr/bin/gawk", "/usr/bin/grep",
		"/usr/bin/find", "/usr/bin/rg", "/usr/bin/shred", "/usr/bin/truncate", "/tmp/x", "/var/tmp/a/b", "/dev/shm/m",
		"/run/shm/y", "/tmp", "/usr/sbin/logrotate", "/usr/bin/dpkg", "/usr/sbin/sshd", "/usr/bin/cat", "/usr/bin/vi",
		"/usr/bin/strace", "/usr/bin/unshare", "memfd:x (deleted)", "", "sh", "/usr/bin/a\\b", "/usr/bin/\xff",
		"/usr/bin/containerd-shim-runc-v2", "/usr/bin/runc", "/usr/bin/kmod", "/usr/bin/gdb"}
	mutArguments = []string{"", "-i", "-c true", "-c", "-lc ls", "script.sh", "-e /bin/sh 10.0.0.1 4444", "-lvp 4444 -e /bin/sh",
		"--sh-exec sh", "-nc", "tcp:1.2.3.4:5 EXEC:/bin/sh", "- SYSTEM:id", "exec:sh", "-r id_rsa /root", "-ri password .",
		"BEGIN RSA PRIVATE KEY", "passwd= x", "root /etc/passwd", "-name *.pem", ".aws/credentials", "/var/log/syslog",
		"-s 0 /var/log/auth.log", "-u /tmp/x", "\"a b\" c", "--", "-x -e", "-E x", "- i"}
	mutPaths = []string{"/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/sudoers.d/x", "/etc/ssh/ssh_host_rsa_key",
		"/root/.ssh/id_rsa", "/root/.aws/credentials", "/root/.kube/config", "/var/run/secrets/kubernetes.io/token",
		"/etc/passwd", "/etc/hosts", "/usr/bin/ls", "/usr/lib/x.so", "/boot/vmlinuz", "/lib64/ld.so", "/var/log/syslog",
		"/var/log/", "/var/logs", "/tmp/f", "relative/etc/shadow", "/usr/local/sbin/x", "", "socket:", "socket:[123]",
		"/dev/null", "anon_inode:x", "/lib/modules/x.ko"}
	mutFunctions = []string{"__x64_sys_openat", "__arm64_sys_openat", "sys_openat", "__x64_sys_unlinkat", "__x64_sys_socket",
		"__x64_sys_dup2", "__x64_sys_dup3", "__x64_sys_ptrace", "__x64_sys_unshare", "__x64_sys_init_module",
		"__x64_sys_finit_module", "__x64_sys_execve", "security_file_open", "openat", "__X64_sys_openat", "___x64_sys_openat"}
	mutPolicies = []string{"default-file-access", "default-detections", "default-system-changes", "default-kernel-modules", "other", ""}
	mutLabels   = []string{"k8s:component=kube-apiserver", "k8s:k8s-app=kube-apiserver", "k8s:app=web", "reserved:host", "k8s:component=etcd"}
	mutPodNames = []string{"", "kube-apiserver-node1", "kube-apiserver", "web-1", "kube-api"}
)

func pick[T any](rng *rand.Rand, l []T) T { return l[rng.IntN(len(l))] }

// mutate returns a copy of ev with some of the fields the rules read
// changed; process and pod values are copied, never modified.
func mutate(rng *rand.Rand, orig *event.Event) *event.Event {
	ev := orig.Clone()
	proc := func(p *event.Process) *event.Process {
		if p == nil {
			p = &event.Process{}
		}
		c := *p
		if rng.IntN(2) == 0 {
			c.Binary = pick(rng, mutBinaries)
		}
		if rng.IntN(2) == 0 {
			c.Arguments = pick(rng, mutArguments)
		}
		if rng.IntN(4) == 0 {
			c.UID = uint32(rng.IntN(3)) * 1000
		}
		switch rng.IntN(5) {
		case 0:
			c.Pod = nil
		case 1:
			c.Pod = &event.Pod{Namespace: "shop", Name: "web", Labels: []event.Label{{Key: "app", Value: "web"}}}
		case 2:
			c.Pod = &event.Pod{Namespace: "shop", Name: "db", Container: event.Container{ID: "c1", Name: pick(rng, []string{"", "db"}), ImageName: "img"}}
		}
		bp := &c.BinaryProperties
		if rng.IntN(3) == 0 {
			bp.Memfd, bp.UpperLayer = rng.IntN(2) == 0, rng.IntN(2) == 0
			id := uint32(rng.IntN(2))
			bp.Setuid, bp.Setgid = nil, nil
			switch rng.IntN(4) {
			case 0:
				bp.Setuid = &id
			case 1:
				bp.Setgid = &id
			case 2:
				bp.Setuid, bp.Setgid = &id, &id
			}
		}
		return &c
	}
	switch rng.IntN(5) {
	case 4:
		// A policy event without its process: a call on its binary is
		// undefined, and so is the body, even under "not".
		ev.Process = nil
	case 0:
		ev.Process = proc(ev.Process)
	case 1:
		ev.Parent = proc(ev.Parent)
	case 2:
		ev.Process, ev.Parent = proc(ev.Process), proc(ev.Parent)
	case 3:
		ev.Parent = nil
	}
	if k := ev.Kprobe; k != nil {
		if rng.IntN(2) == 0 {
			k.PolicyName = pick(rng, mutPolicies)
		}
		if rng.IntN(2) == 0 {
			k.FunctionName = pick(rng, mutFunctions)
		}
		if rng.IntN(4) == 0 {
			// The arguments of another kind of policy event.
			k.Args = nil
			for _, l := range []string{"filename", "flags", "path", "family", "oldfd", "newfd", "request", "pid", "module"} {
				if rng.IntN(2) == 0 {
					k.Args = append(k.Args, event.Arg{Kind: event.ArgInt, Label: l})
				}
			}
		}
		for j := range k.Args {
			a := &k.Args[j]
			switch rng.IntN(6) {
			case 0:
				a.Kind, a.Str = event.ArgString, pick(rng, mutPaths)
			case 1:
				a.Kind, a.Int = event.ArgInt, pick(rng, []int64{0, 1, 2, 16, 17, 4, 5, 13, 16902, 512, 577, 64, 1 << 40, -1})
			case 2:
				a.Kind, a.Str, a.Flags = event.ArgFile, pick(rng, mutPaths), uint32(rng.IntN(1024))
			case 3:
				a.Label = pick(rng, []string{"filename", "flags", "path", "family", "oldfd", "newfd", "request", "pid", "module", ""})
			case 4:
				a.Kind, a.Uint = event.ArgUint, uint64(rng.IntN(20))
			}
		}
		if rng.IntN(10) == 0 && len(k.Args) > 0 {
			// Two arguments of one label: arg() is a conflict in Rego.
			k.Args = append(k.Args, k.Args[0])
			k.Args[len(k.Args)-1].Int++
		}
	}
	if f := ev.Flow; f != nil {
		if rng.IntN(2) == 0 {
			f.Direction = event.Direction(rng.IntN(3))
		}
		if rng.IntN(2) == 0 {
			f.DestinationPort = pick(rng, []uint16{443, 6443, 80, 0})
		}
		if rng.IntN(3) == 0 {
			f.Protocol = pick(rng, []uint8{event.ProtoTCP, event.ProtoUDP, 0})
		}
		if rng.IntN(2) == 0 {
			f.DestEndpoint.Labels = []string{pick(rng, mutLabels), pick(rng, mutLabels)}
		}
		if rng.IntN(2) == 0 {
			f.DestEndpoint.PodName = pick(rng, mutPodNames)
		}
	}
	return ev
}

// FuzzGoEvaluationMatchesRego compares Go and Rego on events whose
// strings and numbers are fuzzed: all default rules, over the typed input
// and the Rego value of the JSON.
func FuzzGoEvaluationMatchesRego(f *testing.F) {
	q := &equivalence{set: loadDefaults(f)}
	f.Add(uint8(0), "/usr/bin/nc", "-e /bin/sh", "default-detections", "__x64_sys_dup2", "socket:", "newfd", int64(1), uint64(17))
	f.Add(uint8(2), "/usr/bin/cat", "", "default-file-access", "__x64_sys_openat", "/etc/shadow", "filename", int64(512), uint64(0))
	f.Add(uint8(5), "/bin/sh", "-i", "k8s:component=kube-apiserver", "kube-apiserver-1", "shop", "app", int64(443), uint64(2))
	f.Add(uint8(0), "/usr/bin/grep", "-r id_rsa /", "", "", "", "", int64(0), uint64(0))
	f.Fuzz(func(t *testing.T, typ uint8, bin, args, s1, s2, s3, s4 string, i int64, u uint64) {
		types := []event.Type{event.TypeProcessExec, event.TypeProcessKprobe, event.TypeFlow}
		ev := fuzzEvent(types[int(typ)%len(types)], bin, args, s3, s4, s1, s2, nil, i, u, 1)
		ev.Process.Arguments = args
		if k := ev.Kprobe; k != nil {
			k.PolicyName, k.FunctionName = s1, s2
			k.Args = []event.Arg{{Kind: event.ArgString, Label: s4, Str: s3}, {Kind: event.ArgInt, Label: "flags", Int: i},
				{Kind: event.ArgFile, Label: "oldfd", Str: s3}, {Kind: event.ArgInt, Label: s3, Int: int64(u)}}
		}
		if fl := ev.Flow; fl != nil {
			fl.Direction, fl.Protocol, fl.DestinationPort = event.DirectionEgress, event.ProtoTCP, uint16(i)
			fl.DestEndpoint = event.Endpoint{Labels: []string{s1}, PodName: s2}
		}
		if strings.HasPrefix(s4, "a") {
			ev.Process.Pod = nil
		}
		if err := q.checkEvent(ev, "n"); err != nil {
			t.Fatal(err)
		}
	})
}
