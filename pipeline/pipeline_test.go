package pipeline

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter"
	"github.com/vigilsec/vigil/flows"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/process"
)

var lossTime = regexp.MustCompile(`(?m)^(\{"lost_events":.*)"time":"[^"]*"`)

var update = flag.Bool("update", false, "rewrite testdata/stream.golden.jsonl")

func raw[T any](r *T) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(r)), unsafe.Sizeof(*r))...)
}

func execRec(pid, ppid uint32, ktime, cgroup uint64, path, cwd string, argv ...string) []byte {
	args := strings.Join(argv, "\x00") + "\x00"
	var r abi.ExecEvent
	r.Hdr.Op, r.Hdr.Pid, r.Hdr.Tid, r.Hdr.Ktime = abi.OpExec, pid, pid, ktime
	r.Ppid, r.CgroupId = ppid, cgroup
	r.Creds = abi.Creds{Uid: 1000, Gid: 1000, Euid: 1000, Egid: 1000, Suid: 1000, Sgid: 1000, Fsuid: 1000, Fsgid: 1000,
		CapPermitted: 0, CapEffective: 0}
	r.Auid, r.Pidns, r.Mntns, r.Netns = 1000, 4026531836, 4026531841, 4026531840
	r.Ino, r.Nlink = 1234, 1
	r.PathLen, r.CwdLen, r.ArgsLen = uint16(len(path)), uint16(len(cwd)), uint16(len(args))
	out := append(raw(&r), path...)
	out = append(out, cwd...)
	return append(out, args...)
}

func forkRec(pid, ppid uint32, ktime uint64) []byte {
	var r abi.ForkEvent
	r.Hdr.Op, r.Hdr.Pid, r.Hdr.Tid, r.Hdr.Ktime = abi.OpFork, pid, pid, ktime
	r.Ppid, r.StartKtime = ppid, ktime
	return raw(&r)
}

func exitRec(pid uint32, ktime uint64, code uint32) []byte {
	var r abi.ExitEvent
	r.Hdr.Op, r.Hdr.Pid, r.Hdr.Tid, r.Hdr.Ktime = abi.OpExit, pid, pid, ktime
	r.ExitCode = code
	return raw(&r)
}

func flowRec(pid uint32, ktime, cgroup uint64, local, remote string, lport, rport uint16) []byte {
	r := abi.FlowEvent{Phase: uint8(abi.FlowFlowPhaseFLOW_START), Direction: uint8(abi.FlowFlowDirectionFLOW_EGRESS),
		Protocol: event.ProtoTCP, Family: 4, CgroupId: cgroup, LocalPort: lport, RemotePort: rport,
		Local: netip.MustParseAddr(local).As16(), Remote: netip.MustParseAddr(remote).As16()}
	r.Hdr.Op, r.Hdr.Pid, r.Hdr.Tid, r.Hdr.Ktime = abi.OpFlow, pid, pid, ktime
	return raw(&r)
}

// pods: cgroup 5000 is a container of pod shop/frontend-1.
type pods struct{ pod *event.Pod }

func (p pods) PodForCgroup(cg uint64) *event.Pod {
	if cg == 5000 {
		return p.pod
	}
	return nil
}

func (p pods) pending(cg uint64) (*event.Pod, bool) { return p.PodForCgroup(cg), false }

type holdPods struct{ pods }

func (h holdPods) PodForCgroup(cg uint64) (*event.Pod, bool) { return h.pending(cg) }

// TestRecordedStream replays kernel records through the whole route (the
// sensors' decoders, the hold, the exporter and its file sink) and compares
// the lines with the recorded stream: what a user sees must not change
// unless the golden file is rewritten on purpose (-update).
func TestRecordedStream(t *testing.T) {
	frontend := &event.Pod{Namespace: "shop", Name: "frontend-1", UID: "6f1c0a55-0000-4000-8000-000000000001",
		Labels:   []event.Label{{Key: "app", Value: "frontend"}},
		Workload: "frontend", WorkloadKind: "Deployment",
		Container: event.Container{ID: "containerd://abc123", Name: "web", ImageName: "docker.io/library/nginx:1.27"}}
	cache, err := process.NewCache(process.Config{NodeName: "node-a",
		Clock: process.Clock{WallOffset: 1_700_000_000_000_000_000, BootTime: 1_699_999_000_000_000_000},
		Pods:  pods{frontend}})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "events.json")
	cfg := exporter.DefaultConfig()
	cfg.Stdout, cfg.File, cfg.NodeName = false, out, "node-a"
	cfg.LostEventsInterval = exporter.Duration(time.Hour)
	log := logrus.New()
	log.SetOutput(io.Discard)
	exp, err := exporter.New(cfg, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{HoldTimeout: time.Second, HoldMax: 16}, nil, nil, holdPods{pods{frontend}}, nil, exp, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	var eps flows.PodEndpoints
	eps.Set(map[netip.Addr]*event.Pod{netip.MustParseAddr("10.0.0.9"): frontend})
	p.Route(process.NewDecoder(cache, p.Decoded()).Routes()...)
	p.Route(flows.NewDecoder(cache, p.Decoded(), &eps).Routes()...)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- exp.Run(ctx) }()
	for _, rec := range [][]byte{
		execRec(100, 1, 1_000, 42, "/usr/bin/bash", "/home/dev", "-bash"),
		forkRec(101, 100, 2_000),
		execRec(101, 100, 3_000, 42, "/usr/bin/curl", "/home/dev", "curl", "-s", "http://10.0.0.9/a b", `say "hi"`),
		flowRec(101, 4_000, 42, "::ffff:10.0.0.1", "::ffff:10.0.0.9", 40000, 80),
		exitRec(101, 5_000, 0),
		execRec(200, 1, 6_000, 5000, "/usr/sbin/nginx", "/", "nginx", "-g", "daemon off;"),
		flowRec(200, 7_000, 5000, "::ffff:10.0.0.9", "::ffff:93.184.216.34", 51000, 443),
		exitRec(200, 8_000, 9),
		exitRec(100, 9_000, 0x100),
		{0xee, 1, 2},                               // an unknown opcode: counted, not exported
		execRec(300, 1, 10_000, 0, "/x", "/")[:20], // short: refused, counted
	} {
		p.Dispatch(rec)
	}
	p.reportLosses()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// A loss report is stamped with the time it is made.
	got = lossTime.ReplaceAll(got, []byte(`$1"time":"(report time)"`))
	if st := p.Stats(); st.Records != 11 || st.Unknown != 1 || st.Errors != 1 {
		t.Errorf("read stage counted %+v, want 11 records, 1 unknown, 1 refused", st)
	}
	golden := filepath.Join("testdata", "stream.golden.jsonl")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Errorf("line %d differs from %s (go test ./pipeline -update rewrites it):\n got: %s\nwant: %s", i+1, golden, g, w)
			}
		}
	}
}
