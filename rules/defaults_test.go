package rules

import (
	"context"
	"testing"
)

func TestDefaultRulesCompile(t *testing.T) {
	if n := len(loadDefaults(t).Rules()); n < 33 {
		t.Errorf("%d default rules, want at least 33", n)
	}
}

// Every alert body of every default rule is evaluated in Go: the attack
// mix's speed depends on it.
func TestDefaultRulesEvaluateInGo(t *testing.T) {
	set := loadDefaults(t)
	for _, tr := range set.byType {
		for i, r := range tr.rules {
			if !tr.plans[i].complete {
				t.Errorf("%s: an alert body has an expression the Go evaluator does not understand", r.ID)
			}
		}
	}
}

// Ordinary activity on a host raises no alert.
func TestOrdinaryActivityRaisesNoAlert(t *testing.T) {
	o := NewOffline(loadDefaults(t), nil)
	for _, l := range ordinary(t) {
		res, err := o.Eval(context.Background(), l)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range res.Alerts {
			t.Errorf("%s: %s on %s", a.Alert.Rule.ID, a.Alert.Description, l)
		}
	}
}

// Each default rule raises its alert on the recorded behaviour and nothing
// on the rest: the recorded events hold each behaviour's benign counterpart.
func TestDefaultRulesOnRecordedEvents(t *testing.T) {
	set, _, err := Load(context.Background(), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	o := NewOffline(set, nil)
	got := map[string]int{}
	for _, l := range recorded(t) {
		res, err := o.Eval(context.Background(), l)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Errors) > 0 {
			t.Errorf("rule errors: %v", res.Errors)
		}
		for _, a := range res.Alerts {
			got[a.Alert.Rule.ID]++
		}
	}
	for _, r := range set.Rules() {
		want := 1
		switch r.ID {
		case "VGL-PERS-002":
			want = 0 // the host the events were recorded on has no modules
		case "VGL-DEF-002":
			want = 2 // truncated, then removed
		case "VGL-EXEC-001":
			want = 2 // in a pod, then in a PID namespace of its own
		case "VGL-CRED-001":
			// Named, through a traversal, relative to the working
			// directory, a user's SSH key.
			want = 4
		case "VGL-EXEC-004":
			// A program, a script, a relative script (go test's binary
			// in /tmp is a build output).
			want = 3
		case "VGL-CRED-003", "VGL-IMP-001":
			want = 2 // hard and symbolic link; a pool, a miner's name
		case "VGL-DEF-005":
			want = 2 // a preload, overflowing tunables
		case "VGL-PRIV-005":
			// In a PID namespace: made / private, then mounted; then
			// debugfs on the host.
			want = 3
		}
		if got[r.ID] != want {
			t.Errorf("%s raised %d alerts on the recorded events, want %d", r.ID, got[r.ID], want)
		}
	}
}

// VGL-DEF-005 on exec events with the loader's variables: where they are
// set, not where they are inherited; preloads of ordinary tools and plain
// tunables raise nothing.
func TestLoaderEnvHijack(t *testing.T) {
	o := NewOffline(loadDefaults(t), nil)
	exec := func(binary, env, parentEnv, props string) []byte {
		proc := func(bin, env, extra string) string {
			s := `{"exec_id":"x","pid":10,"binary":"` + bin + `"` + extra
			if env != "" {
				s += `,"environment_variables":[` + env + `]`
			}
			return s + "}"
		}
		return []byte(`{"process_exec":{"process":` + proc(binary, env, props) + `,"parent":` + proc("/bin/sh", parentEnv, "") + `},"node_name":"n","time":"2026-01-01T00:00:00Z"}`)
	}
	kv := func(k, v string) string { return `{"Key":"` + k + `","Value":"` + v + `"}` }
	setuid := `,"binary_properties":{"setuid":0}`
	for _, tc := range []struct {
		name                  string
		env, parentEnv, props string
		want                  int
	}{
		{"preload set", kv("LD_PRELOAD", "/dev/shm/.h.so"), "", "", 1},
		{"audit set", kv("LD_AUDIT", "/tmp/a.so"), kv("LD_PRELOAD", "/tmp/a.so"), "", 1},
		{"preload inherited", kv("LD_PRELOAD", "/dev/shm/.h.so"), kv("LD_PRELOAD", "/dev/shm/.h.so"), "", 0},
		{"preload changed", kv("LD_PRELOAD", "/dev/shm/.h.so"), kv("LD_PRELOAD", "/x.so"), "", 1},
		{"fakeroot", kv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libfakeroot/libfakeroot-sysv.so"), "", "", 0},
		{"stdbuf and a payload", kv("LD_PRELOAD", "/usr/libexec/coreutils/libstdbuf.so:/tmp/p.so"), "", "", 1},
		{"jemalloc", kv("LD_PRELOAD", "libjemalloc.so.2"), "", "", 0},
		{"library path", kv("LD_LIBRARY_PATH", "/tmp"), "", "", 0},
		{"plain tunables", kv("GLIBC_TUNABLES", "glibc.malloc.check=1:glibc.malloc.mxfast=2"), "", "", 0},
		{"overflow shape", kv("GLIBC_TUNABLES", "glibc.malloc.mxfast=glibc.malloc.mxfast=A"), "", "", 1},
		{"tunables to set-uid", kv("GLIBC_TUNABLES", "glibc.malloc.check=1"), "", setuid, 1},
		{"tunables inherited by set-uid", kv("GLIBC_TUNABLES", "glibc.malloc.check=1"), kv("GLIBC_TUNABLES", "glibc.malloc.check=1"), setuid, 0},
		{"none", "", "", setuid, 0},
	} {
		res, err := o.Eval(context.Background(), exec("/usr/bin/true", tc.env, tc.parentEnv, tc.props))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, a := range res.Alerts {
			if a.Alert.Rule.ID == "VGL-DEF-005" {
				n++
			}
		}
		if n != tc.want || len(res.Errors) > 0 {
			t.Errorf("%s: %d VGL-DEF-005 alerts (errors %v), want %d", tc.name, n, res.Errors, tc.want)
		}
	}
}
