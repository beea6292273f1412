package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/networkpolicy/conntest"
)

// TestNetpolMatrixGolden keeps the output of vigil netpol matrix byte for
// byte: tables and JSON of clusters from conntest.MatrixManifests (every
// policy kind, audit, deny, named ports, pods without addresses), and of
// policies without pods.
func TestNetpolMatrixGolden(t *testing.T) {
	allPorts := []string{"--port", "80/TCP", "--port", "443/TCP", "--port", "8080/TCP", "--port", "53/UDP", "--port", "9090/TCP"}
	for _, tc := range []struct {
		golden, manifests string
		args              []string
	}{
		{"matrix.txt", "matrix.yaml", allPorts},
		{"matrix-small.json", "matrix-small.yaml", []string{"--port", "443/TCP", "--port", "8080/TCP", "-o", "json"}},
		{"matrix-nopods.txt", "matrix-nopods.yaml", allPorts},
		{"matrix-nopods.json", "matrix-nopods.yaml", []string{"-o", "json"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			args := append([]string{"netpol", "matrix", "--manifests", filepath.Join("testdata", "netpol", tc.manifests)}, tc.args...)
			res := runVigil(t, nil, args...)
			if res.Code != 0 {
				t.Fatalf("exit %d: %s", res.Code, res.Stderr)
			}
			golden := filepath.Join("testdata", "netpol", tc.golden+".golden")
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(res.Stdout), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), res.Stdout); diff != "" {
				t.Errorf("vigil %v differs from %s (go test ./cmd/vigil -run NetpolMatrixGolden -update):\n%s", args, golden, diff)
			}
		})
	}
}

// BenchmarkNetpolMatrix runs vigil netpol matrix on 500 pods, 200 policies
// and 5 ports (conntest.MatrixManifests) in a child process writing to
// /dev/null, and reports the child's peak RSS (getrusage) with its time.
func BenchmarkNetpolMatrix(b *testing.B) {
	dir := b.TempDir()
	manifests := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(manifests, []byte(conntest.MatrixManifests(500, 200)), 0o644); err != nil {
		b.Fatal(err)
	}
	ports := []string{"--port", "80/TCP", "--port", "443/TCP", "--port", "8080/TCP", "--port", "53/UDP", "--port", "9090/TCP"}
	for _, format := range []string{"text", "json"} {
		b.Run(format, func(b *testing.B) {
			var peak int64
			for b.Loop() {
				cmd := exec.Command("/proc/self/exe", append([]string{"netpol", "matrix", "--manifests", manifests, "-o", format}, ports...)...)
				cmd.Args[0] = "vigil"
				cmd.Env = append(os.Environ(), envRunAsVigil+"=1")
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				if err := cmd.Run(); err != nil {
					b.Fatalf("%v: %s", err, stderr.String())
				}
				if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
					peak = max(peak, ru.Maxrss)
				}
			}
			b.ReportMetric(float64(peak)/1024, "peak_RSS_MB")
			b.ReportMetric(500*499*5, "flows/op")
		})
	}
}
