package tracingsensor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/vigilsec/vigil/kprobes/abi"
)

// DefaultProtectedBinaries are the programs a node cannot lose: the
// container runtimes and kubelet. Names are looked up in the directories of
// $PATH and the usual system directories, and may hold glob patterns.
var DefaultProtectedBinaries = []string{"containerd", "containerd-shim*", "runc", "kubelet", "dockerd", "crio"}

// binaryDirs are searched for protected binaries given by name, after $PATH.
var binaryDirs = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// Protection says which processes policies never kill, signal or deny
// unless a selector names them exactly and its policy sets
// allow-protected-enforcement. PID 1 and kernel threads are always
// protected.
type Protection struct {
	// AgentPID is the agent's process: its own calls trigger no policy,
	// and it and its parents are protected. 0 means this process.
	AgentPID int
	// Binaries are absolute paths of executables (as ResolveBinaries
	// returns them) whose processes are protected.
	Binaries []string
}

// ResolveBinaries turns names and patterns into the absolute paths of the
// executables they find in each of the file systems whose roots are given
// (none: the agent's own; the host's is /proc/1/root when the agent runs in
// a container): an absolute pattern is globbed as it is, a name (which may
// hold * ? [...]) is looked up in every directory of path (a $PATH-like
// list) and the usual system directories. A path through symbolic links
// adds the path they lead to, resolved within its root, since the kernel
// reports that one as the executable. Patterns that find nothing are left
// out: a node need not run every runtime. The paths returned are as the
// processes of each file system see them, without the root prefix.
func ResolveBinaries(patterns []string, path string, roots ...string) ([]string, error) {
	if len(roots) == 0 {
		roots = []string{""}
	}
	seen := map[string]bool{}
	for _, root := range roots {
		found, err := resolveBinaries(patterns, append(filepath.SplitList(path), binaryDirs...), root)
		if err != nil {
			return nil, err
		}
		for _, p := range found {
			seen[p] = true
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// resolveBinaries is ResolveBinaries with the directories names are looked
// up in.
func resolveBinaries(patterns, dirs []string, root string) ([]string, error) {
	root = strings.TrimSuffix(root, "/")
	found := map[string]bool{}
	add := func(m string) {
		p := "/" + strings.TrimLeft(strings.TrimPrefix(m, root), "/")
		real, err := resolveUnder(root, p)
		if err != nil {
			return
		}
		st, err := os.Stat(root + real)
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			return
		}
		found[p], found[real] = true, true
	}
	glob := func(pat string) {
		matches, _ := filepath.Glob(root + pat)
		for _, m := range matches {
			add(m)
		}
	}
	for _, pat := range patterns {
		if _, err := filepath.Match(pat, ""); err != nil {
			return nil, fmt.Errorf("%q: %w", pat, err)
		}
		switch {
		case filepath.IsAbs(pat):
			glob(filepath.Clean(pat))
		case strings.Contains(pat, "/"):
			return nil, fmt.Errorf("%q: give a program's name or its absolute path", pat)
		case pat == "":
			return nil, errors.New("empty name")
		default:
			for _, d := range dirs {
				if filepath.IsAbs(d) {
					glob(filepath.Join(d, pat))
				}
			}
		}
	}
	out := make([]string, 0, len(found))
	for p := range found {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// resolveUnder resolves the symbolic links of the absolute path p within
// the file system whose root is root: an absolute link target starts again
// from root, as it does for the processes of that file system.
func resolveUnder(root, p string) (string, error) {
	todo := strings.Split(strings.TrimPrefix(filepath.Clean(p), "/"), "/")
	done := "/"
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		next := filepath.Join(done, c)
		st, err := os.Lstat(root + next)
		if err != nil {
			return "", err
		}
		if st.Mode()&os.ModeSymlink == 0 {
			done = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many symbolic links", p)
		}
		target, err := os.Readlink(root + next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			done = "/"
		}
		todo = append(strings.Split(strings.Trim(filepath.Clean(target), "/"), "/"), todo...)
	}
	return done, nil
}

// protect writes the protected processes into the kernel: the agent, its
// parents and PID 1 into protected_tgids (which the process sensor's exit
// handler empties as they exit), the binaries into protected_bins.
func (g *generic) protect(procRoot string, p Protection) error {
	tgids := g.Map(abi.GenericMapProtectedTgids)
	bins := g.Map(abi.GenericMapProtectedBins)
	put := func(pid uint32, why abi.ProcessProtectReason) error {
		var old uint32
		if err := tgids.Lookup(pid, &old); err == nil {
			why |= abi.ProcessProtectReason(old)
		}
		if err := tgids.Update(pid, uint32(why), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("protect PID %d: %w", pid, err)
		}
		return nil
	}
	if err := put(1, abi.ProcessProtectReasonPROTECT_INIT); err != nil {
		return err
	}
	if err := put(g.agentPID, abi.ProcessProtectReasonPROTECT_AGENT); err != nil {
		return err
	}
	for pid, n := g.agentPID, 0; n < 64; n++ {
		ppid, err := parentPID(procRoot, pid)
		if err != nil {
			return fmt.Errorf("the agent's parents: %w", err)
		}
		if ppid == 0 {
			break
		}
		if err := put(ppid, abi.ProcessProtectReasonPROTECT_AGENT_PARENT); err != nil {
			return err
		}
		pid = ppid
	}
	if limit := int(bins.MaxEntries()); len(p.Binaries) > limit {
		return fmt.Errorf("%d protected binaries; at most %d", len(p.Binaries), limit)
	}
	_, err := g.protectBinaries(p.Binaries)
	return err
}

// binKey is the key of an executable in protected_bins: the path as the
// process table holds it, NUL padded (BINARY_MAX).
type binKey [256]byte

func newBinKey(path string) binKey {
	var k binKey
	copy(k[:len(k)-1], path)
	return k
}

// protectBinaries adds executables to protected_bins and returns those
// that were not there.
func (g *generic) protectBinaries(paths []string) ([]string, error) {
	bins := g.Map(abi.GenericMapProtectedBins)
	var added []string
	for _, b := range paths {
		if !filepath.IsAbs(b) {
			return added, fmt.Errorf("protected binary %q is not an absolute path", b)
		}
		var one uint8
		key := newBinKey(b)
		if bins.Lookup(key, &one) == nil {
			continue
		}
		if err := bins.Update(key, uint8(1), ebpf.UpdateAny); err != nil {
			return added, fmt.Errorf("protect %s: %w (at most %d protected binaries)", b, err, bins.MaxEntries())
		}
		added = append(added, b)
	}
	return added, nil
}

// ProtectBinaries adds executables (absolute paths, as ResolveBinaries
// returns them) to the protected ones, and returns those that were new.
// Protection of a path is never withdrawn while the sensor runs.
func (s *Sensor) ProtectBinaries(paths []string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen.protectBinaries(paths)
}

// ProtectedBinaries returns the paths of the protected executables, sorted.
func (s *Sensor) ProtectedBinaries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	var k binKey
	var v uint8
	it := s.gen.Map(abi.GenericMapProtectedBins).Iterate()
	for it.Next(&k, &v) {
		out = append(out, strings.TrimRight(string(k[:]), "\x00"))
	}
	sort.Strings(out)
	return out
}

// parentPID reads a process's parent from procRoot/PID/stat.
func parentPID(procRoot string, pid uint32) (uint32, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it follow the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("PID %d: unreadable stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, fmt.Errorf("PID %d: unreadable stat", pid)
	}
	ppid, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("PID %d: parent %q: %w", pid, f[1], err)
	}
	return uint32(ppid), nil
}

// SearchDirs returns the directories ResolveBinaries looks in for the
// patterns (without a root prefix): those of path and the system
// directories for names, the directory of an absolute pattern when it has
// no glob characters itself, and the directories of the paths found, where
// the targets of symbolic links lie. A change in them may change what the
// patterns find.
func SearchDirs(patterns []string, path string, found []string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(d string) {
		if filepath.IsAbs(d) && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	names := false
	for _, pat := range patterns {
		if filepath.IsAbs(pat) {
			if d := filepath.Dir(filepath.Clean(pat)); !strings.ContainsAny(d, `*?[\`) {
				add(d)
			}
		} else {
			names = true
		}
	}
	if names {
		for _, d := range append(filepath.SplitList(path), binaryDirs...) {
			add(filepath.Clean(d))
		}
	}
	for _, f := range found {
		add(filepath.Dir(f))
	}
	return out
}
