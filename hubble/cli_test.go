package hubble

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/internal/kerneltest"
)

// hubbleCLI returns the hubble CLI that scripts/hubble-cli.sh builds from
// the cilium module of go.mod (once; a few minutes).
func hubbleCLI(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		kerneltest.Skip(t, "-short: the hubble CLI may have to be built")
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	cmd := exec.Command(filepath.Join(root, "scripts", "hubble-cli.sh"))
	cmd.Stderr = os.Stderr
	path, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/hubble-cli.sh: %v", err)
	}
	return strings.TrimSpace(string(path))
}

func hubble(t *testing.T, bin, addr string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--server", addr)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hubble %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// The hubble CLI, unchanged, reads Vigil's flows: the compact view, JSON
// with the process in the extensions, filters, status and nodes.
func TestHubbleCLI(t *testing.T) {
	bin := hubbleCLI(t)
	store := newStore(t, 64)
	c := NewConverter("node-a", nil)
	fill(store, c, 4)
	_, addr := serve(t, store)

	compact := hubble(t, bin, addr, "observe", "--last", "10")
	for _, want := range []string{
		"default/tiefighter:40000 (ID:1010) -> default/deathstar:80 (ID:1009) to-endpoint FORWARDED (TCP Flags: SYN)",
		"default/xwing:40000 (ID:1005) -> default/deathstar:80 (ID:1009) Policy denied DROPPED (TCP Flags: SYN)",
	} {
		if !strings.Contains(compact, want) {
			t.Errorf("hubble observe lacks %q:\n%s", want, compact)
		}
	}

	out := hubble(t, bin, addr, "observe", "--verdict", "DROPPED", "-o", "json")
	var n int
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r struct {
			Flow struct {
				Verdict string `json:"verdict"`
				Source  struct {
					PodName string `json:"pod_name"`
				} `json:"source"`
				NodeName        string `json:"node_name"`
				IngressDeniedBy []struct {
					Name, Namespace, Kind string
				} `json:"ingress_denied_by"`
				Extensions struct {
					Value struct {
						Process struct {
							Binary string `json:"binary"`
						} `json:"process"`
					} `json:"value"`
				} `json:"extensions"`
			} `json:"flow"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("hubble -o json line %q: %v", sc.Text(), err)
		}
		n++
		f := r.Flow
		if f.Verdict != "DROPPED" || f.Source.PodName != "xwing" || f.NodeName != "node-a" ||
			len(f.IngressDeniedBy) != 1 || f.IngressDeniedBy[0].Name != "rule1" || f.Extensions.Value.Process.Binary != "/usr/bin/curl" {
			t.Errorf("dropped flow %s", sc.Text())
		}
	}
	if n != 2 {
		t.Errorf("hubble observe --verdict DROPPED printed %d flows, want 2:\n%s", n, out)
	}
	if out := hubble(t, bin, addr, "observe", "--from-label", "org=empire", "-o", "compact"); strings.Contains(out, "xwing") ||
		!strings.Contains(out, "tiefighter") {
		t.Errorf("--from-label org=empire:\n%s", out)
	}

	// Follow: a flow stored after the CLI started arrives.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "observe", "--follow", "--server", addr, "--pod", "default/xwing")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	go func() {
		// The CLI connects at its own pace: keep storing until it reads.
		for ctx.Err() == nil {
			store.Put(c.Convert(landing(xwing, "10.0.0.3", event.VerdictDropped, time.Hour)))
			time.Sleep(50 * time.Millisecond)
		}
	}()
	if !lines.Scan() || !strings.Contains(lines.Text(), "default/xwing:40000") {
		t.Errorf("hubble observe --follow printed %q, want the new xwing flow", lines.Text())
	}
	cancel()

	status := hubble(t, bin, addr, "status")
	if !strings.Contains(status, "Healthcheck (via ") || !strings.Contains(status, "Flows/s:") {
		t.Errorf("hubble status:\n%s", status)
	}
	nodes := hubble(t, bin, addr, "list", "nodes")
	if !strings.Contains(nodes, "node-a") || !strings.Contains(nodes, "Connected") {
		t.Errorf("hubble list nodes:\n%s", nodes)
	}
}
