// Command demo is the Vigil side of the Death Star demo (see ../demo.sh):
// it enforces a policy for pods given as network namespaces and cgroups,
// serves the Death Star's landing API, and requests landings.
//
//	demo enforce --workloads pods.yaml --policy ../policy.yaml
//	demo serve --addr :80
//	demo land --to 198.18.10.1:80 [--method PUT --path /v1/exhaust-port]
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
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/yaml"

	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
	"github.com/vigilsec/vigil/networkpolicy/httpproxy"
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
	// Netns is the pod's network namespace, where the HTTP proxy of an
	// L7 policy listens.
	Netns string `json:"netns,omitempty"`
}

type fileSource struct {
	pods  []datapath.Pod
	netns []string
}

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
		if w.Netns != "" {
			src.netns = append(src.netns, w.Netns)
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
	var out sync.Mutex
	if len(networkpolicy.HTTPPorts(res.Policies)) > 0 {
		stop, err := proxyHTTP(d, src, log, &out)
		if err != nil {
			return err
		}
		defer stop()
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
		out.Lock()
		fmt.Printf("%s %s %s -> %s %d/%s by %s\n", r.Verdict, r.Direction, name(names, r.Source), name(names, r.Destination),
			r.Destination.Port(), r.Protocol, r.Rule)
		out.Unlock()
	}
}

// proxyHTTP runs the HTTP proxy of the policy's rules.http in the pods'
// network namespaces and prints a line per request.
func proxyHTTP(d *datapath.Datapath, src fileSource, log logrus.FieldLogger, out *sync.Mutex) (func(), error) {
	report := func(f *httpproxy.Flow) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf("%s %s %s %s -> %s %d by %s\n", f.Verdict, f.HTTP.Method, f.HTTP.URL, f.From, f.To, f.HTTP.Code, strings.Join(f.Policies, ", "))
	}
	p, err := httpproxy.New(httpproxy.Config{Conns: d, Policy: d, PodAddr: d.CgroupAddr, Report: report}, log)
	if err != nil {
		return nil, err
	}
	var nss []httpproxy.Netns
	for _, path := range src.netns {
		ns, err := httpproxy.NetnsOf(path)
		if err != nil {
			p.Close()
			return nil, err
		}
		nss = append(nss, ns)
	}
	if err := p.SetNetns(nss); err != nil {
		p.Close()
		return nil, err
	}
	if err := d.SetHTTPProxy(p.Port(), uint32(os.Getpid())); err != nil {
		p.Close()
		return nil, err
	}
	return func() { p.Close() }, nil
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
	mux.HandleFunc("PUT /v1/exhaust-port", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Panic: deathstar exploded", http.StatusServiceUnavailable)
	})
	return http.ListenAndServe(*addr, mux)
}

// land requests a landing; exit 0 when landed, 1 when refused or dropped.
func land(args []string) int {
	fs := flag.NewFlagSet("land", flag.ContinueOnError)
	to := fs.String("to", "", "the Death Star's address:port")
	method := fs.String("method", "POST", "request method")
	path := fs.String("path", "/v1/request-landing", "request path")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	client := &http.Client{Timeout: *timeout}
	req, err := http.NewRequest(*method, "http://"+*to+*path, nil)
	if err != nil {
		fmt.Println("landing failed:", err)
		return 2
	}
	resp, err := client.Do(req)
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
	fmt.Println(strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
