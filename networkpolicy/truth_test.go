package networkpolicy_test

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/conntest"
)

// endpoint resolves a case's "namespace/pod" or address.
func endpoint(t *testing.T, e *networkpolicy.Engine, ref string) networkpolicy.Endpoint {
	t.Helper()
	if ip, err := netip.ParseAddr(ref); err == nil {
		return e.Address(ip)
	}
	ep, err := e.Pod(ref)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// TestTruthTables runs every truth table under testdata/truth against the
// offline engine, and checks that the flattened datapath tables decide
// each case the same way. The steps of a table also go, one after the
// other, through one Compiler: the incremental engine of each step must be
// the full compile's, case by case and entry by entry.
func TestTruthTables(t *testing.T) {
	files, err := conntest.Files(filepath.Join("testdata", "truth"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no truth tables found")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := conntest.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			alloc := networkpolicy.NewAllocator()
			comp := networkpolicy.NewCompiler(alloc)
			for i, step := range s.Steps {
				res, err := s.Resources(i)
				if err != nil {
					t.Fatal(err)
				}
				e, err := networkpolicy.Compile(res, alloc)
				if err != nil {
					t.Fatal(err)
				}
				inc, _, err := comp.Update(res)
				if err != nil {
					t.Fatal(err)
				}
				tables := e.Flatten()
				if diff := cmp.Diff(tables, inc.Flatten()); diff != "" {
					t.Errorf("step %q: the incremental tables differ from a full compile (-full +incremental):\n%s", step.Name, diff)
				}
				for _, c := range step.Cases {
					from, to := endpoint(t, e, c.From), endpoint(t, e, c.To)
					got := e.Check(from, to, c.Protocol, c.Port)
					if got.Verdict != c.Expect {
						t.Errorf("%s: step %q: %s: got %s, want %s%s", c.Where, step.Name, c, got.Verdict, c.Expect, explain(got))
					}
					if ig := inc.Check(endpoint(t, inc, c.From), endpoint(t, inc, c.To), c.Protocol, c.Port); ig.Verdict != got.Verdict {
						t.Errorf("%s: step %q: %s: the incremental engine says %s, a full compile %s", c.Where, step.Name, c, ig.Verdict, got.Verdict)
					}
					if got.Egress != nil {
						checkTables(t, tables, from.Local, networkpolicy.Egress, to.Identity, c, got.Egress.Decision)
					}
					if got.Ingress != nil {
						checkTables(t, tables, to.Local, networkpolicy.Ingress, from.Identity, c, got.Ingress.Decision)
					}
				}
			}
		})
	}
}

func checkTables(t *testing.T, tables *networkpolicy.Tables, local uint32, dir networkpolicy.Direction, remote uint32, c conntest.Case, want networkpolicy.Decision) {
	t.Helper()
	got := tables.Lookup(local, dir, remote, c.Protocol, c.Port)
	w := networkpolicy.PolicyEntry{Verdict: want.Verdict, Reason: want.Reason, Rule: want.Rule()}
	if got != w {
		t.Errorf("%s: %s %s: tables say %+v, engine %+v", c.Where, c, dir, got, w)
	}
}

func explain(r networkpolicy.Result) string {
	s := ""
	for _, side := range []struct {
		name string
		s    *networkpolicy.Side
	}{{"egress", r.Egress}, {"ingress", r.Ingress}} {
		if side.s == nil {
			continue
		}
		s += "\n\t" + side.name + ": " + side.s.Verdict.String() + " (" + side.s.Reason.String() + ")"
		for _, ref := range side.s.Refs {
			s += "\n\t\t" + ref.String()
		}
	}
	return s
}
