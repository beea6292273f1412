package networkpolicy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"text/tabwriter"

	"github.com/google/go-cmp/cmp"
)

// referenceMatrix prints the matrix the plain way: every flow checked with
// Engine.Check and kept, then printed through one tabwriter, or encoded as
// one value with json.Encoder. The streaming writers must print the same
// bytes.
func referenceMatrix(w io.Writer, e *Engine, ports []MatrixPort, asJSON bool) error {
	type report struct {
		Pods  []string     `json:"pods"`
		Ports []string     `json:"ports"`
		Flows []FlowReport `json:"flows"`
	}
	pods := e.Pods()
	rep := report{Pods: []string{}, Ports: []string{}, Flows: []FlowReport{}}
	for _, p := range pods {
		rep.Pods = append(rep.Pods, p.String())
	}
	cells := make([][][]string, len(ports))
	for i, p := range ports {
		rep.Ports = append(rep.Ports, p.Text)
		cells[i] = make([][]string, len(pods))
		for a, from := range pods {
			for b, to := range pods {
				r := e.Check(from, to, p.Protocol, p.Port)
				cell := matrixCell(r.Verdict)
				if a == b {
					cell = "-"
				} else {
					rep.Flows = append(rep.Flows, r.Report())
				}
				cells[i][a] = append(cells[i][a], cell)
			}
		}
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, p := range ports {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "%s FROM \\ TO", p.Text)
		for _, name := range rep.Pods {
			fmt.Fprintf(tw, "\t%s", name)
		}
		fmt.Fprintln(tw)
		for a, name := range rep.Pods {
			fmt.Fprint(tw, name)
			for _, c := range cells[i][a] {
				fmt.Fprintf(tw, "\t%s", c)
			}
			fmt.Fprintln(tw)
		}
	}
	fmt.Fprintln(tw, "\n"+MatrixLegend)
	return tw.Flush()
}

// TestMatrixAgreesWithCheck compares the streaming matrix writers with the
// reference on random clusters, with the default bounds and with bounds so
// small that remembered decisions and their JSON are dropped all the time.
func TestMatrixAgreesWithCheck(t *testing.T) {
	n := 60
	if testing.Short() {
		n = 15
	}
	ports, err := ParseMatrixPorts([]string{"80/TCP", "53/UDP", "8080", "81/SCTP"})
	if err != nil {
		t.Fatal(err)
	}
	for seed := 0; seed < n; seed++ {
		r := rand.New(rand.NewPCG(uint64(seed), 11))
		e, src := compileRandom(t, r)
		for _, asJSON := range []bool{false, true} {
			var want bytes.Buffer
			if err := referenceMatrix(&want, e, ports, asJSON); err != nil {
				t.Fatal(err)
			}
			for _, lim := range []matrixLimits{defaultMatrixLimits, {sides: 3, jsonBytes: 600}} {
				var got bytes.Buffer
				write := e.writeMatrix
				if asJSON {
					write = e.writeMatrixJSON
				}
				if err := write(&got, ports, lim); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want.String(), got.String()); diff != "" {
					t.Fatalf("seed %d, json %v, limits %+v: matrix differs from the reference (-want +got):\n%s\nmanifests:\n%s", seed, asJSON, lim, diff, src)
				}
			}
		}
	}
}
