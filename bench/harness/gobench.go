package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// GoBench is one `go test -bench` command and what it printed.
type GoBench struct {
	Command string
	// Results by benchmark name (without the -N CPU suffix), then by unit,
	// one value per -count run.
	Results map[string]map[string][]float64
	Order   []string
}

// goBenchCommands are the Go benchmarks `make bench` runs.
func goBenchCommands(count int) [][]string {
	c := strconv.Itoa(count)
	return [][]string{
		{"go", "test", "./process", "-run", "^$", "-bench", "Pipeline", "-benchmem", "-cpu", "1", "-count", c},
		{"go", "test", "./tracingsensor", "-run", "^$", "-bench", "PrivSyscallHook", "-benchtime", "200000x", "-count", c},
		{"go", "test", "./rules", "-run", "^$", "-bench", "Rules/(ordinary|all)$", "-cpu", "1", "-count", c},
		// DNS under network policy, side by side: the latency a lookup
		// gains, lookups/s with the datapath on over off, and the share of
		// 10,000 first connects after a lookup that succeed.
		{"go", "test", "./networkpolicy/datapath", "-run", "^$", "-bench", "^BenchmarkPrivDNSLookup$", "-benchtime", "30x", "-count", c},
		// What --dns-visibility adds to a lookup.
		{"go", "test", "./flows", "-run", "^$", "-bench", "^BenchmarkPrivDNSVisibility$", "-benchtime", "30x", "-count", c},
		// Requests of a pod through the HTTP proxy of rules.http against
		// direct, and on a port rules.http does not govern.
		{"go", "test", "./networkpolicy/httpproxy", "-run", "^$", "-bench", "PrivHTTP", "-benchtime", "2000x", "-count", c},
		// The web UI in headless Chromium: the agent's CPU while a page
		// follows 10k flows/s, and the first paint of a large map.
		{"go", "test", "./ui", "-run", "^$", "-bench", "^Benchmark(UIFollow|FirstPaint)$", "-benchtime", c + "x", "-count", "1"},
	}
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+(\d+)\s+(.*)$`)

// ParseGoBench reads `go test -bench` output.
func ParseGoBench(out []byte) *GoBench {
	g := &GoBench{Results: map[string]map[string][]float64{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		name := m[1]
		f := strings.Fields(m[4])
		if g.Results[name] == nil {
			g.Results[name] = map[string][]float64{}
			g.Order = append(g.Order, name)
		}
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			g.Results[name][f[i+1]] = append(g.Results[name][f[i+1]], v)
		}
	}
	return g
}

func (h *Harness) runGoBench(ctx context.Context) error {
	for _, argv := range goBenchCommands(3) {
		h.progress("%s", strings.Join(argv, " "))
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = h.opts.Repo
		cmd.Env = append(os.Environ(), "VIGIL_PRIVILEGED=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
		}
		g := ParseGoBench(out)
		g.Command = "VIGIL_PRIVILEGED=1 " + strings.Join(argv, " ")
		if len(g.Order) == 0 {
			return fmt.Errorf("%s printed no benchmark result:\n%s", g.Command, out)
		}
		h.rep.GoBench = append(h.rep.GoBench, g)
	}
	return nil
}
