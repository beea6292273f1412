package process

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/encode"
	"github.com/vigilsec/vigil/kprobes/abi"
)

// The process pipeline benchmarks replay raw exec and exit records, built
// byte for byte as the kernel writes them, through the path every record
// takes in the agent: the Decoder (layout checks), the Cache (exec id,
// parent link, argument formatting, pod lookup, bounded eviction) and the
// exporter's encode.Encoder (JSON line), with one reused output buffer.
//
//	go test ./process -run '^$' -bench Pipeline -benchmem -cpu 1

// podTable is the enrichment step: a cgroup id to pod lookup in an
// immutable map, as identity.Resolver.PodForCgroup does it.
type podTable map[uint64]*event.Pod

func (t podTable) PodForCgroup(id uint64) *event.Pod { return t[id] }

// encodeSink encodes every event as the exporter does and keeps nothing.
// A nil encoder skips encoding, to split the cost between the cache and
// the encoder.
type encodeSink struct {
	enc   *encode.Encoder
	buf   []byte
	bytes int
}

func (s *encodeSink) Export(ev *event.Event) {
	if s.enc == nil {
		return
	}
	s.buf = s.enc.AppendJSON(s.buf[:0], ev, "node-a")
	s.bytes += len(s.buf) + 1
}

// recordStream is a replayable sequence of raw records.
type recordStream struct {
	recs [][]byte
	ops  []uint8
	// span is how far kernel time advances over one pass.
	span uint64
}

// pipelineStream builds n short-lived processes, each started by one of 64
// long-lived shells (exec'd first, never exiting), spread over cgroups
// (with pods: 8 pods, one cgroup each); each process exits 50 records
// after its exec. Pids run from 10000 up and wrap like the kernel's.
func pipelineStream(n int, withPods bool) (*recordStream, podTable) {
	pods := podTable{}
	const nPods = 8
	if withPods {
		for i := range nPods {
			pods[uint64(5000+i)] = &event.Pod{
				Namespace: "shop", Name: "web-7c9f8d-" + strconv.Itoa(i), UID: "0c9b4f6e-4d0f-4b55-9c1f-0f4b1c0de00" + strconv.Itoa(i),
				Labels:   []event.Label{{Key: "app", Value: "web"}, {Key: "tier", Value: "frontend"}},
				Workload: "web", WorkloadKind: "Deployment",
				Container: event.Container{
					ID: "containerd://3f1e2d4c5b6a79880123456789abcdef0123456789abcdef0123456789abcde" + strconv.Itoa(i), Name: "web",
					ImageName: "registry.example.com/shop/web:1.4.2",
				},
			}
		}
	}
	s := &recordStream{}
	kt := uint64(1_000_000)
	add := func(op uint8, rec []byte) {
		s.recs = append(s.recs, rec)
		s.ops = append(s.ops, op)
	}
	setCgroup := func(rec []byte, cg uint64) {
		(*abi.ExecEvent)(unsafe.Pointer(&rec[0])).CgroupId = cg
	}
	const shells = 64
	for i := range shells {
		kt += 1000
		rec := execRecord(uint32(2000+i), 1, kt, "/usr/bin/dash", "/srv/app", "/bin/sh", "-c", "while true; do work; done")
		setCgroup(rec, uint64(5000+i%nPods))
		add(abi.OpExec, rec)
	}
	var pending []uint32
	for i := range n {
		kt += 1000
		pid := uint32(10000 + i%30000)
		parent := uint32(2000 + i%shells)
		rec := execRecord(pid, parent, kt, "/usr/bin/curl", "/srv/app", "curl", "-s", "-H", "Accept: application/json",
			"https://api.example.com/v1/orders?id="+strconv.Itoa(i))
		setCgroup(rec, uint64(5000+int(parent)%nPods))
		add(abi.OpExec, rec)
		pending = append(pending, pid)
		if len(pending) > 50 {
			kt += 1000
			add(abi.OpExit, exitRecord(pending[0], kt, 0))
			pending = pending[1:]
		}
	}
	s.span = kt
	if !withPods {
		pods = nil
	}
	return s, pods
}

// shift moves the kernel time of every record of the stream by d, so that a
// second pass continues the first one in time.
func (s *recordStream) shift(d uint64) {
	for _, rec := range s.recs {
		h := (*abi.ExitEvent)(unsafe.Pointer(&rec[0]))
		h.Hdr.Ktime += d
	}
}

// benchEnv is an ordinary interactive environment: LS_COLORS, PATH, the
// session's variables.
func benchEnv() []byte {
	env := []string{
		"SHELL=/bin/bash", "PWD=/srv/app", "LOGNAME=app", "HOME=/home/app", "LANG=C.UTF-8",
		"LS_COLORS=" + strings.Repeat("di=01;34:ln=01;36:*.tar=01;31:", 50), "TERM=xterm-256color", "USER=app",
		"SHLVL=1", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "MAIL=/var/mail/app",
		"SSH_CONNECTION=10.0.0.2 50422 10.0.0.1 22", "XDG_SESSION_ID=42", "XDG_RUNTIME_DIR=/run/user/1000", "_=/usr/bin/curl",
	}
	return []byte(strings.Join(env, "\x00") + "\x00")
}

// addEnv appends env to every exec record, read whole.
func (s *recordStream) addEnv(env []byte) {
	for i, rec := range s.recs {
		if s.ops[i] != abi.OpExec {
			continue
		}
		r := (*abi.ExecEvent)(unsafe.Pointer(&rec[0]))
		r.EnvLen, r.EnvHead = uint16(len(env)), uint16(len(env))
		s.recs[i] = append(rec, env...)
	}
}

func BenchmarkPipeline(b *testing.B) {
	for _, tc := range []struct {
		name     string
		pods     bool
		noEncode bool
		// env gives every exec a 2.3 KB environment without the variables
		// asked for (a login shell's), read with the default --exec-env.
		env bool
	}{{"host", false, false, false}, {"host-env", false, false, true}, {"pods", true, false, false}, {"pods-no-encode", true, true, false}} {
		b.Run(tc.name, func(b *testing.B) {
			stream, pods := pipelineStream(20000, tc.pods)
			cfg := Config{NodeName: "node-a", Clock: testClock} // the agent's defaults: 65,536 entries, 30 s grace
			if tc.env {
				stream.addEnv(benchEnv())
				cfg.ExecEnv = DefaultExecEnv
			}
			if pods != nil {
				cfg.Pods = pods
			}
			cache, err := NewCache(cfg)
			if err != nil {
				b.Fatal(err)
			}
			sink := &encodeSink{buf: make([]byte, 0, 64<<10)}
			if !tc.noEncode {
				sink.enc = encode.NewEncoder(nil)
			}
			d := NewDecoder(cache, sink)
			handle := [256]func([]byte) error{abi.OpExec: d.Exec, abi.OpExit: d.Exit}
			// One pass warms the cache and the encoder; the measured loop
			// is the steady state.
			for i, rec := range stream.recs {
				handle[stream.ops[i]](rec)
			}
			stream.shift(stream.span)
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			i := 0
			for b.Loop() {
				if err := handle[stream.ops[i]](stream.recs[i]); err != nil {
					b.Fatal(err)
				}
				if i++; i == len(stream.recs) {
					i = 0
					b.StopTimer()
					stream.shift(stream.span)
					b.StartTimer()
				}
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			// allocs/op is rounded down to an integer; this is the exact
			// mean (one entry per exec, none per exit).
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/event")
			if !tc.noEncode {
				b.ReportMetric(float64(sink.bytes)/float64(b.N+len(stream.recs)), "B/event")
			}
			if d.Errors != 0 {
				b.Fatalf("%d records refused", d.Errors)
			}
		})
	}
}
