// Package bpfstats reads the kernel's run-time statistics (run count and
// cumulative run time) of the BPF programs one process holds, so that a
// benchmark charges a program's cost to the agent that loaded it and not to
// another agent or test running on the same machine. It only reads: it
// never loads, attaches or detaches anything.
package bpfstats

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Enable turns the kernel's BPF run-time statistics on until the returned
// closer is closed (the kernel counts how many holders want them). While on,
// every program run costs two more clock reads.
func Enable() (io.Closer, error) {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, fmt.Errorf("enable BPF run-time statistics (needs CAP_SYS_ADMIN and Linux 5.8): %w", err)
	}
	return c, nil
}

// Program is the statistics of all loaded instances of one program name.
type Program struct {
	Name string
	// Instances is how many programs of this name the process holds (one
	// per hook for the generic programs).
	Instances int
	Runs      uint64
	Runtime   time.Duration
}

// PerRun is the mean run time, or 0 when the program did not run.
func (p Program) PerRun() time.Duration {
	if p.Runs == 0 {
		return 0
	}
	return p.Runtime / time.Duration(p.Runs)
}

// Snapshot is the statistics of one process's programs at one moment, by
// program name.
type Snapshot map[string]Program

// ProgramIDs lists the ids of the BPF programs process pid holds a file
// descriptor to, directly or through a BPF link, from /proc/PID/fdinfo.
func ProgramIDs(procRoot string, pid int) ([]ebpf.ProgramID, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return nil, fmt.Errorf("list descriptors of process %d: %w", pid, err)
	}
	seen := map[ebpf.ProgramID]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
		if err != nil || (target != "anon_inode:bpf-prog" && target != "anon_inode:bpf_link") {
			continue
		}
		id, ok, err := fdinfoProgID(filepath.Join(dir, "fdinfo", fd.Name()))
		if err != nil || !ok {
			continue // closed meanwhile, or a link without a program
		}
		seen[id] = true
	}
	out := make([]ebpf.ProgramID, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// fdinfoProgID reads the prog_id line of a program's or link's fdinfo.
func fdinfoProgID(path string) (ebpf.ProgramID, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	return parseProgID(f)
}

func parseProgID(r io.Reader) (ebpf.ProgramID, bool, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(k) != "prog_id" {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return 0, false, fmt.Errorf("prog_id %q: %w", v, err)
		}
		return ebpf.ProgramID(n), n != 0, nil
	}
	return 0, false, sc.Err()
}

// Of returns the statistics of the programs process pid holds whose names
// start with one of prefixes (all of them when prefixes is empty).
func Of(procRoot string, pid int, prefixes ...string) (Snapshot, error) {
	ids, err := ProgramIDs(procRoot, pid)
	if err != nil {
		return nil, err
	}
	out := Snapshot{}
	for _, id := range ids {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		info, ierr := p.Info()
		st, serr := p.Stats()
		p.Close()
		if ierr != nil || serr != nil || !hasPrefix(info.Name, prefixes) {
			continue
		}
		s := out[info.Name]
		s.Name = info.Name
		s.Instances++
		s.Runs += st.RunCount
		s.Runtime += st.Runtime
		out[info.Name] = s
	}
	return out, nil
}

func hasPrefix(s string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// Sub returns what ran between before and s, sorted by run time, largest
// first. Programs that did not run are left out.
func (s Snapshot) Sub(before Snapshot) []Program {
	var out []Program
	for name, a := range s {
		b := before[name]
		d := Program{Name: name, Instances: a.Instances, Runs: a.Runs - b.Runs, Runtime: a.Runtime - b.Runtime}
		if a.Runs < b.Runs || a.Runtime < b.Runtime {
			// A program of this name was unloaded meanwhile: count from zero.
			d.Runs, d.Runtime = a.Runs, a.Runtime
		}
		if d.Runs > 0 {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Runtime != out[j].Runtime {
			return out[i].Runtime > out[j].Runtime
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Total sums programs whose names start with one of prefixes (all when
// none is given).
func Total(progs []Program, prefixes ...string) Program {
	var t Program
	for _, p := range progs {
		if hasPrefix(p.Name, prefixes) {
			t.Instances += p.Instances
			t.Runs += p.Runs
			t.Runtime += p.Runtime
		}
	}
	return t
}
