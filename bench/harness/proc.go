package harness

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on every
// Linux architecture Vigil runs on).
const clockTicks = 100

// ProcUsage is what /proc says of one process.
type ProcUsage struct {
	// CPUSeconds is user plus system time.
	CPUSeconds float64
	// PeakRSS is VmHWM in bytes.
	PeakRSS int64
	RSS     int64
	// RSSAnon is memory of the process's own (heap, stacks, maps it
	// wrote); RSSFile is pages of files it mapped (the binary, shared
	// memory such as BPF ring buffers), which the kernel can reclaim.
	RSSAnon, RSSFile int64
}

// readProcUsage reads /proc/PID/stat and /proc/PID/status.
func readProcUsage(procRoot string, pid int) (ProcUsage, error) {
	var u ProcUsage
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return u, err
	}
	cpu, err := parseStatCPU(string(stat))
	if err != nil {
		return u, fmt.Errorf("%s/stat: %w", dir, err)
	}
	u.CPUSeconds = cpu
	// The scheduler's run time of every thread is exact (nanoseconds);
	// utime+stime counts clock ticks. Use it when the kernel has it.
	if ns, ok := schedRunTime(dir); ok {
		u.CPUSeconds = ns / 1e9
	}
	f, err := os.Open(filepath.Join(dir, "status"))
	if err != nil {
		return u, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "VmHWM":
			u.PeakRSS = parseKB(v)
		case "VmRSS":
			u.RSS = parseKB(v)
		case "RssAnon":
			u.RSSAnon = parseKB(v)
		case "RssFile":
			u.RSSFile = parseKB(v)
		case "RssShmem":
			// Ring buffers and other mmapped BPF maps count here.
			u.RSSFile += parseKB(v)
		}
	}
	return u, sc.Err()
}

// schedRunTime sums the first field of /proc/PID/task/*/schedstat: the
// time each thread ran, in nanoseconds. Threads that exited are not
// counted, which is why the harness reads it over periods a long-lived
// agent's threads span.
func schedRunTime(dir string) (float64, bool) {
	tasks, err := os.ReadDir(filepath.Join(dir, "task"))
	if err != nil {
		return 0, false
	}
	var total float64
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, "task", t.Name(), "schedstat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			return 0, false
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, false
		}
		total += v
	}
	return total, true
}

// parseStatCPU returns utime+stime of a /proc/PID/stat line, in seconds.
// The command name (field 2) may hold spaces and parentheses: fields are
// counted after its last ')'.
func parseStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name in %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// After the name: state is field 3, utime 14, stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("utime %q stime %q", f[11], f[12])
	}
	return float64(ut+st) / clockTicks, nil
}

func parseKB(v string) int64 {
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[0], 10, 64)
	return n << 10
}

// Noise is what the machine was doing besides the benchmark.
type Noise struct {
	Load1, Load5 float64
	// Steal and busy are CPU time fractions over an interval, from
	// /proc/stat (all CPUs).
	Steal, Busy float64
}

func readLoad(procRoot string) (l1, l5 float64) {
	b, err := os.ReadFile(filepath.Join(procRoot, "loadavg"))
	if err != nil {
		return -1, -1
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return -1, -1
	}
	l1, _ = strconv.ParseFloat(f[0], 64)
	l5, _ = strconv.ParseFloat(f[1], 64)
	return l1, l5
}

// cpuTimes are the aggregate "cpu" line of /proc/stat, in ticks.
type cpuTimes struct{ total, idle, steal uint64 }

func readCPUTimes(procRoot string) cpuTimes {
	b, err := os.ReadFile(filepath.Join(procRoot, "stat"))
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseCPULine(line)
}

func parseCPULine(line string) cpuTimes {
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return cpuTimes{}
	}
	var t cpuTimes
	for i, s := range f[1:] {
		v, _ := strconv.ParseUint(s, 10, 64)
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		t.total += v
		switch i {
		case 3, 4: // idle, iowait
			t.idle += v
		case 7:
			t.steal += v
		}
	}
	return t
}

// busyBetween returns the busy and steal fractions between two readings.
func busyBetween(a, b cpuTimes) (busy, steal float64) {
	d := float64(b.total - a.total)
	if d <= 0 {
		return 0, 0
	}
	return float64((b.total-a.total)-(b.idle-a.idle)) / d, float64(b.steal-a.steal) / d
}
