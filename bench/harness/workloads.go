package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/vigilsec/vigil/bench/workload"
)

// Row is one measured figure of a workload: the table has one line per
// row and configuration.
type Row struct {
	Workload string
	Metric   string
	// Higher is set when more is better (throughput); the ratio is then
	// with/without and the target a minimum. Otherwise (wall time) the
	// ratio is with/without and the target a maximum.
	Higher bool
	// Target is the ratio to meet (0: none); TargetNote names where it
	// comes from.
	Target     float64
	TargetNote string
}

// Key identifies a row.
func (r Row) Key() string { return r.Workload + "/" + r.Metric }

// Met reports whether ratio meets the row's target.
func (r Row) Met(ratio float64) bool {
	if r.Higher {
		return ratio >= r.Target
	}
	return ratio <= r.Target
}

// TargetString is "≤1.05" or "≥0.97" (or "—").
func (r Row) TargetString() string {
	switch {
	case r.Target == 0:
		return "—"
	case r.Higher:
		return fmt.Sprintf("≥%.2f", r.Target)
	}
	return fmt.Sprintf("≤%.2f", r.Target)
}

// Measurement is one run of a workload.
type Measurement struct {
	// Values by row metric.
	Values map[string]float64
	// Seconds is how long the workload's timed part ran (for event
	// rates).
	Seconds float64
	Ops     int64
}

// Workload is something the harness runs with and without the agent.
type Workload struct {
	Name string
	// Desc is what it does, for the table's legend.
	Desc string
	// Command is the command line of one run, for the record.
	Command string
	Rows    []Row
	Run     func(ctx context.Context) (Measurement, error)
}

// timed makes a workload whose one row is the wall time of a child run
// of `vigil-bench work ...`.
func (h *Harness) timed(name, desc, metric string, target float64, note string, args ...string) *Workload {
	argv := append([]string{h.opts.Self, "work", name}, args...)
	w := &Workload{Name: name, Desc: desc, Command: strings.Join(argv, " "),
		Rows: []Row{{Workload: name, Metric: metric, Target: target, TargetNote: note}}}
	w.Run = func(ctx context.Context) (Measurement, error) {
		r, err := h.runWork(ctx, argv)
		if err != nil {
			return Measurement{}, err
		}
		return Measurement{Values: map[string]float64{metric: r.Seconds}, Seconds: r.Seconds, Ops: r.Ops}, nil
	}
	return w
}

func (h *Harness) runWork(ctx context.Context, argv []string) (workload.Result, error) {
	out, err := Child{Argv: argv, Cgroup: h.clientCg}.Run(ctx)
	if err != nil {
		return workload.Result{}, err
	}
	return workload.Parse(out)
}

// Workloads returns the workloads of the overhead table.
func (h *Harness) Workloads() []*Workload {
	o := h.opts
	ws := []*Workload{
		h.timed("exec", fmt.Sprintf("fork+exec+wait of /bin/true, %d times in a row", o.ExecN), "wall time", 1.03, "",
			"-n", strconv.Itoa(o.ExecN)),
		h.timed("file", fmt.Sprintf("open+read+close of 64 files of 4 KiB that no policy names, %d times", o.FileN), "wall time", 1.03, "",
			"-n", strconv.Itoa(o.FileN), "-dir", h.dir+"/files"),
		h.timed("file-monitored", fmt.Sprintf("open+read+close of /etc/shadow (a default policy reports every open), %d times", o.MonitoredN), "wall time", 0, "",
			"-n", strconv.Itoa(o.MonitoredN), "-path", "/etc/shadow"),
		h.timed("connect", fmt.Sprintf("TCP connect+accept+close on loopback, %d connections", o.ConnectN), "wall time", 1.05, "",
			"-n", strconv.Itoa(o.ConnectN)),
	}
	bulkArgv := []string{o.Self, "work", "bulk", "-bytes", strconv.FormatInt(o.BulkBytes, 10), "-chunk", "131072"}
	ws = append(ws, &Workload{
		Name: "bulk", Desc: fmt.Sprintf("one loopback TCP stream of %d MiB in 128 KiB writes", o.BulkBytes>>20),
		Command: strings.Join(bulkArgv, " "),
		Rows:    []Row{{Workload: "bulk", Metric: "throughput", Higher: true, Target: 0.99}},
		Run: func(ctx context.Context) (Measurement, error) {
			r, err := h.runWork(ctx, bulkArgv)
			if err != nil {
				return Measurement{}, err
			}
			return Measurement{Values: map[string]float64{"throughput": float64(r.Bytes) / r.Seconds}, Seconds: r.Seconds, Ops: r.Ops}, nil
		},
	})
	if h.redisPort != 0 {
		argv := []string{"redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(h.redisPort), "-t", "set,get",
			"-n", strconv.Itoa(o.RedisN), "-c", strconv.Itoa(o.RedisClients), "--csv"}
		ws = append(ws, &Workload{
			Name: "redis", Desc: fmt.Sprintf("redis-benchmark SET and GET, %d requests each, %d clients, against redis-server on loopback", o.RedisN, o.RedisClients),
			Command: strings.Join(argv, " "),
			Rows: []Row{
				{Workload: "redis", Metric: "SET requests/s", Higher: true, Target: 0.98},
				{Workload: "redis", Metric: "GET requests/s", Higher: true, Target: 0.98},
			},
			Run: func(ctx context.Context) (Measurement, error) {
				start := time.Now()
				out, err := Child{Argv: argv, Cgroup: h.clientCg}.Run(ctx)
				if err != nil {
					return Measurement{}, err
				}
				rps, err := ParseRedisCSV(out)
				if err != nil {
					return Measurement{}, err
				}
				if rps["SET"] == 0 || rps["GET"] == 0 {
					return Measurement{}, fmt.Errorf("redis-benchmark reported no SET or GET rate: %q", out)
				}
				return Measurement{Values: map[string]float64{"SET requests/s": rps["SET"], "GET requests/s": rps["GET"]},
					Seconds: time.Since(start).Seconds(), Ops: int64(2 * o.RedisN)}, nil
			},
		})
	}
	return ws
}

// ParseRedisCSV reads `redis-benchmark --csv`: a header, then
// "TEST","requests per second",... per test.
func ParseRedisCSV(out []byte) (map[string]float64, error) {
	rps := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		if len(f) < 2 {
			continue
		}
		name, val := strings.Trim(f[0], `"`), strings.Trim(f[1], `"`)
		if name == "test" {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, fmt.Errorf("redis-benchmark line %q: %w", sc.Text(), err)
		}
		rps[name] = v
	}
	if len(rps) == 0 {
		return nil, fmt.Errorf("no result in redis-benchmark output %q", out)
	}
	return rps, nil
}

// startRedis starts redis-server (no persistence) on a free loopback port
// in the client cgroup and waits until it answers.
func (h *Harness) startRedis(ctx context.Context) error {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return fmt.Errorf("redis-server not installed (scripts/setup-host.sh --bench installs it): %w", err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	cmd, err := Child{Argv: []string{"redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "yes", "--logfile", h.dir + "/redis.log",
		"--dir", h.dir}, Cgroup: h.clientCg}.Start(ctx)
	if err != nil {
		return err
	}
	h.redis = cmd
	for range 100 {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err == nil {
			c.Write([]byte("PING\r\n"))
			buf := make([]byte, 16)
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if strings.HasPrefix(string(buf[:n]), "+PONG") {
				h.redisPort = port
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on port %d did not answer PING (log in %s/redis.log)", port, h.dir)
}
