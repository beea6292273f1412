// Command demo is the Vigil side of the Death Star demo (see ../demo.sh):
// it enforces a policy for pods given as network namespaces and cgroups,
// serves the Death Star's landing API, and requests landings.
//
//	demo enforce --workloads pods.yaml --policy ../policy.yaml
//	demo serve --addr :80
//	demo land --to 198.18.10.1:80
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/yaml"

	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: demo enforce|serve|land [flags]")
		return 2
	}
	var err error
	switch args[0] {
	case "enforce":
		err = enforce(args[1:])
	case "serve":
		err = serve(args[1:])
	case "land":
		return land(args[1:])
	default:
		err = fmt.Errorf("unknown command %q", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	return 0
}

// workload is one pod of the workloads file the script writes.
type workload struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels"`
	IP        string            `json:"ip"`
	Cgroup    string            `json:"cgroup"`
}

type fileSource struct{ pods []datapath.Pod }

func (s fileSource) Pods(context.Context) ([]datapath.Pod, error) { return s.pods, nil }

func readWorkloads(path string) (fileSource, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return fileSource{}, err
	}
	var list []workload
	if err := yaml.UnmarshalStrict(b, &list); err != nil {
		return fileSource{}, fmt.Errorf("%s: %w", path, err)
	}
	var src fileSource
	for _, w := range list {
		ip, err := netip.ParseAddr(w.IP)
		if err != nil {
			return src, fmt.Errorf("%s: pod %s: %w", path, w.Name, err)
		}
		var st unix.Stat_t
		if err := unix.Stat(w.Cgroup, &st); err != nil {
			return src, fmt.Errorf("%s: pod %s: cgroup: %w", path, w.Name, err)
		}
		src.pods = append(src.pods, datapath.Pod{
			Pod:       networkpolicy.Pod{Namespace: w.Namespace, Name: w.Name, Labels: w.Labels, ServiceAccount: "default", IPs: []netip.Addr{ip}},
			CgroupIDs: []uint64{st.Ino},
		})
	}
	return src, nil
}

func enforce(args []string) error {
	fs := flag.NewFlagSet("enforce", flag.ContinueOnError)
	workloads := fs.String("workloads", "", "YAML list of pods: namespace, name, labels, ip, cgroup")
	policy := fs.String("policy", "", "policy file or directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	src, err := readWorkloads(*workloads)
	if err != nil {
		return err
	}
	res, err := networkpolicy.Load(*policy)
	if err != nil {
		return err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return err
	}
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	d, err := datapath.New(datapath.Config{Workloads: src}, log)
	if err != nil {
		return err
	}
	if err := d.Load(); err != nil {
		return err
	}
	defer d.Close()
	if _, err := d.Apply(context.Background(), res); err != nil {
		return err
	}
	rd, err := d.Records()
	if err != nil {
		return err
	}
	names := map[netip.Addr]string{}
	for _, p := range src.pods {
		names[p.IPs[0]] = p.Key()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); rd.Close() }()
	fmt.Println("enforcing", strings.Join(policyNames(res), ", "))
	for {
		r, err := rd.Read()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		fmt.Printf("%s %s %s -> %s %d/%s by %s\n", r.Verdict, r.Direction, name(names, r.Source), name(names, r.Destination),
			r.Destination.Port(), r.Protocol, r.Rule)
	}
}

func policyNames(res *networkpolicy.Resources) []string {
	var out []string
	for _, p := range res.Policies {
		out = append(out, p.String())
	}
	return out
}

func name(names map[netip.Addr]string, ap netip.AddrPort) string {
	if n, ok := names[ap.Addr()]; ok {
		return n
	}
	return ap.Addr().String()
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", ":80", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/request-landing", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "Ship landed")
	})
	return http.ListenAndServe(*addr, mux)
}

// land requests a landing; exit 0 when landed, 1 when refused or dropped.
func land(args []string) int {
	fs := flag.NewFlagSet("land", flag.ContinueOnError)
	to := fs.String("to", "", "the Death Star's address:port")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Post("http://"+*to+"/v1/request-landing", "text/plain", nil)
	if err != nil {
		var ne net.Error
		switch {
		case errors.Is(err, syscall.EPERM):
			fmt.Println("landing refused: connect: operation not permitted")
		case errors.As(err, &ne) && ne.Timeout():
			fmt.Println("landing failed: no answer (dropped)")
		default:
			fmt.Println("landing failed:", err)
		}
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	return 0
}
