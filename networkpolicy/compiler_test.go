package networkpolicy

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/manifest"
)

// randomResources parses a random cluster (see randomManifests).
func randomResources(t testing.TB, r *rand.Rand) *Resources {
	t.Helper()
	src := randomManifests(r)
	docs, err := manifest.Split("random.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Parse(docs)
	if err != nil {
		t.Fatalf("generated manifests must be valid: %v\n%s", err, src)
	}
	return res
}

// churn makes random changes to a cluster, as a node sees them: pods come,
// go, are relabelled, change addresses and named ports; namespaces are
// relabelled; policies are added, removed and replaced; the node's
// addresses change.
type churn struct {
	r    *rand.Rand
	t    testing.TB
	res  *Resources
	pool []*Policy
	n    int
}

func (c *churn) pick(n int) int { return c.r.IntN(n) }

// copyPolicy returns pol under a fresh name, with sections of its own.
func (c *churn) copyPolicy(pol *Policy) *Policy {
	c.n++
	cp := *pol
	cp.Name = fmt.Sprintf("%s-c%d", pol.Name, c.n)
	cp.Sections = slices.Clone(pol.Sections)
	return &cp
}

// editPolicy returns a new version of pol (new pointers throughout, as a
// parse of the edited document gives): the same, or with one rule removed,
// given other ports, or given the peers of a rule of another policy.
func (c *churn) editPolicy(pol *Policy) (*Policy, string) {
	cp := *pol
	cp.Sections = make([]Section, len(pol.Sections))
	for i, sec := range pol.Sections {
		cp.Sections[i] = sec
		cp.Sections[i].Rules = nil
		for _, r := range sec.Rules {
			nr := *r
			nr.Peers, nr.Ports = slices.Clone(r.Peers), slices.Clone(r.Ports)
			cp.Sections[i].Rules = append(cp.Sections[i].Rules, &nr)
		}
	}
	if len(cp.Sections) == 0 || len(cp.Sections[0].Rules) == 0 {
		return &cp, "reparse"
	}
	rules := cp.Sections[0].Rules
	i := c.pick(len(rules))
	other := c.pool[c.pick(len(c.pool))]
	var donor *Rule
	for _, sec := range other.Sections {
		for _, r := range sec.Rules {
			if r.Direction == rules[i].Direction {
				donor = r
			}
		}
	}
	switch k := c.pick(5); {
	case k == 0:
		return &cp, "reparse"
	case k == 1:
		cp.Sections[0].Rules = slices.Delete(rules, i, i+1)
		return &cp, "drop a rule of"
	case donor == nil:
		return &cp, "reparse"
	case k == 2:
		rules[i].Ports = slices.Clone(donor.Ports)
		return &cp, "new ports in"
	case k == 3:
		cp.Audit = !cp.Audit
		return &cp, "switch the mode of"
	default:
		rules[i].Peers, rules[i].AnyPeer = slices.Clone(donor.Peers), donor.AnyPeer
		return &cp, "new peers in"
	}
}

func (c *churn) randomPod() *Pod {
	c.n++
	apps, tiers := []string{"a", "b", "c"}, []string{"x", "z"}
	p := &Pod{Namespace: fmt.Sprintf("n%d", c.pick(3)), Name: fmt.Sprintf("q%d", c.n), ServiceAccount: "default",
		Labels: map[string]string{"app": apps[c.pick(3)], "tier": tiers[c.pick(2)]}}
	c.setPorts(p)
	c.setIPs(p)
	return p
}

func (c *churn) setPorts(p *Pod) {
	p.Ports = []ContainerPort{{Name: "web", Protocol: []Protocol{ProtoTCP, ProtoUDP}[c.pick(2)], Port: []uint16{80, 81, 8080}[c.pick(3)]}}
	if c.pick(2) == 0 {
		p.Ports = append(p.Ports, ContainerPort{Name: "dns", Protocol: ProtoUDP, Port: 53})
	}
}

func (c *churn) setIPs(p *Pod) {
	p.IPs = nil
	if c.pick(4) > 0 {
		p.IPs = append(p.IPs, netip.AddrFrom4([4]byte{198, 18, byte(c.pick(2)), byte(1 + c.pick(60))}))
	}
	if c.pick(4) == 0 {
		p.IPs = append(p.IPs, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(1 + c.pick(60))}))
	}
}

// step makes one random change and names it.
func (c *churn) step() string {
	res := c.res
	switch k := c.pick(11); {
	case k == 0 || len(res.Pods) < 2:
		p := c.randomPod()
		res.Pods = append(res.Pods, p)
		return "add pod " + p.Key()
	case k == 1:
		i := c.pick(len(res.Pods))
		name := res.Pods[i].Key()
		res.Pods = slices.Delete(slices.Clone(res.Pods), i, i+1)
		return "remove pod " + name
	case k <= 4:
		i := c.pick(len(res.Pods))
		p := *res.Pods[i]
		p.Labels = maps.Clone(p.Labels)
		what := "relabel"
		switch c.pick(4) {
		case 0:
			p.Labels["app"] = []string{"a", "b", "c"}[c.pick(3)]
		case 1:
			p.Labels["tier"] = []string{"x", "z"}[c.pick(2)]
		case 2:
			c.setIPs(&p)
			what = "readdress"
		default:
			c.setPorts(&p)
			what = "new ports of"
		}
		res.Pods = slices.Clone(res.Pods)
		res.Pods[i] = &p
		return what + " pod " + p.Key()
	case k == 5:
		res.Namespaces = slices.Clone(res.Namespaces)
		i := c.pick(len(res.Namespaces))
		ns := *res.Namespaces[i]
		ns.Labels = map[string]string{"team": []string{"red", "blue", "green"}[c.pick(3)]}
		res.Namespaces[i] = &ns
		return "relabel namespace " + ns.Name
	case k == 6 && len(res.Policies) > 0:
		i := c.pick(len(res.Policies))
		p, what := c.editPolicy(res.Policies[i])
		res.Policies = slices.Clone(res.Policies)
		res.Policies[i] = p
		return what + " policy " + p.String()
	case k <= 7 || len(res.Policies) == 0:
		p := c.copyPolicy(c.pool[c.pick(len(c.pool))])
		res.Policies = append(slices.Clone(res.Policies), p)
		return "add policy " + p.String()
	case k == 8 || k == 9:
		i := c.pick(len(res.Policies))
		name := res.Policies[i].String()
		res.Policies = slices.Delete(slices.Clone(res.Policies), i, i+1)
		return "remove policy " + name
	default:
		if c.pick(2) == 0 {
			res.HostIPs = []netip.Addr{netip.AddrFrom4([4]byte{198, 18, 1, byte(250 + c.pick(5))})}
			return "new node address"
		}
		i := c.pick(len(res.Policies))
		p := c.copyPolicy(c.pool[c.pick(len(c.pool))])
		p.Name, p.Namespace, p.Kind = res.Policies[i].Name, res.Policies[i].Namespace, res.Policies[i].Kind
		res.Policies = slices.Clone(res.Policies)
		res.Policies[i] = p
		return "replace policy " + p.String()
	}
}

// sortPods keeps pods in namespace/name order, as Parse and the agent give
// them.
func sortPods(res *Resources) {
	slices.SortFunc(res.Pods, func(a, b *Pod) int { return strings.Compare(a.Key(), b.Key()) })
}

func FuzzIncrementalMatchesFullCompile(f *testing.F) {
	for _, s := range []uint64{1, 2, 3, 42} {
		f.Add(s, s*17)
	}
	f.Fuzz(func(t *testing.T, a, b uint64) {
		checkChurn(t, rand.New(rand.NewPCG(a, b)), fmt.Sprintf("seed %d/%d", a, b), 20)
	})
}

// TestIncrementalMatchesFullCompile applies random sequences of changes to
// random clusters through one Compiler and checks, after every change,
// that the engine is the one a full compile of the same resources gives
// (identities, pods, rules, every datapath entry, decisions), and that the
// previous tables patched where the Delta says give the new tables.
func TestIncrementalMatchesFullCompile(t *testing.T) {
	seeds, steps := 60, 25
	if testing.Short() {
		seeds = 30
	}
	for seed := 0; seed < seeds; seed++ {
		checkChurn(t, rand.New(rand.NewPCG(uint64(seed), 99)), fmt.Sprintf("seed %d", seed), steps)
	}
}

func checkChurn(t *testing.T, r *rand.Rand, name string, steps int) {
	c := &churn{r: r, t: t, res: randomResources(t, r)}
	for i := 0; i < 4; i++ {
		c.pool = append(c.pool, randomResources(t, r).Policies...)
	}
	if len(c.pool) == 0 {
		return
	}
	c.res.HostIPs = []netip.Addr{netip.MustParseAddr("198.18.1.254")}
	alloc := NewAllocator()
	comp := NewCompiler(alloc)
	var prev *Tables
	var history []string
	for s := 0; s <= steps; s++ {
		if s > 0 {
			history = append(history, c.step())
			sortPods(c.res)
		}
		inc, delta, err := comp.Update(c.res)
		if err != nil {
			t.Fatal(err)
		}
		full, err := Compile(c.res, alloc)
		if err != nil {
			t.Fatal(err)
		}
		where := fmt.Sprintf("%s after %q", name, history)
		compareEngines(t, where, full, inc)
		tables := inc.Flatten()
		if prev != nil {
			if diff := cmp.Diff(tables, patchTables(prev, inc, delta)); diff != "" {
				t.Fatalf("%s: the tables patched where the delta says differ from the new ones (-want +got):\n%s", where, diff)
			}
		} else if !delta.All {
			t.Fatalf("%s: the first update must say that everything changed", where)
		}
		prev = tables
	}
}

// patchTables applies a delta to the tables of the previous engine.
func patchTables(prev *Tables, e *Engine, d *Delta) *Tables {
	if d.All {
		return e.Flatten()
	}
	out := &Tables{IPCache: maps.Clone(prev.IPCache), Policy: map[uint32]map[PolicyKey]PolicyEntry{}}
	for p := range d.IPCache {
		if id, ok := e.ipcache[p]; ok {
			out.IPCache[p] = id
		} else {
			delete(out.IPCache, p)
		}
	}
	for local, m := range prev.Policy {
		out.Policy[local] = maps.Clone(m)
	}
	for local := range d.Removed {
		delete(out.Policy, local)
	}
	for local := range d.Locals {
		delete(out.Policy, local)
		if m := e.FlattenLocal(local); len(m) > 0 {
			out.Policy[local] = m
		}
	}
	for local, remotes := range d.Remotes {
		if d.Locals[local] {
			continue
		}
		m := out.Policy[local]
		if m == nil {
			m = map[PolicyKey]PolicyEntry{}
		}
		for k := range m {
			if remotes[k.Remote] {
				delete(m, k)
			}
		}
		for r := range remotes {
			maps.Copy(m, e.FlattenRemote(local, r))
		}
		if len(m) == 0 {
			delete(out.Policy, local)
		} else {
			out.Policy[local] = m
		}
	}
	return out
}

// engineView is what users of an engine see of it.
type engineView struct {
	Identities []string
	Pods       []string
	Rules      []string
	Locals     []uint32
	Tables     *Tables
}

func viewOf(e *Engine) engineView {
	var v engineView
	for _, id := range e.Identities() {
		v.Identities = append(v.Identities, fmt.Sprintf("%d %s", id.ID, id))
	}
	for _, ep := range e.Pods() {
		v.Pods = append(v.Pods, fmt.Sprintf("%s local %d identity %d %s", ep, ep.Local, ep.Identity, ep.IP))
	}
	for _, id := range sortedIDs(e.rules) {
		v.Rules = append(v.Rules, fmt.Sprintf("%d %s", id, e.rules[id]))
	}
	v.Locals = e.LocalIdentities()
	v.Tables = e.Flatten()
	return v
}

func compareEngines(t *testing.T, where string, want, got *Engine) {
	t.Helper()
	if diff := cmp.Diff(viewOf(want), viewOf(got)); diff != "" {
		t.Fatalf("%s: the incremental engine differs from a full compile (-full +incremental):\n%s", where, diff)
	}
	// Decisions name every deciding rule, more than the tables hold.
	ids := want.Identities()
	for _, local := range want.LocalIdentities() {
		for _, remote := range ids {
			for _, dir := range []Direction{Ingress, Egress} {
				for _, q := range []struct {
					proto Protocol
					port  uint16
				}{{ProtoTCP, 80}, {ProtoUDP, 53}, {ProtoTCP, 8080}, {ProtoSCTP, 81}, {1, 0}} {
					w, g := want.Decide(local, dir, remote.ID, q.proto, q.port), got.Decide(local, dir, remote.ID, q.proto, q.port)
					if diff := cmp.Diff(w, g); diff != "" {
						t.Fatalf("%s: Decide(%d, %s, %d, %s/%d) differs (-full +incremental):\n%s", where, local, dir, remote.ID, q.proto, q.port, diff)
					}
				}
			}
		}
	}
}
