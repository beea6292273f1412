package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cilium/ebpf"
	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/internal/buildinfo"
	"github.com/vigilsec/vigil/kprobes"
)

// bugtoolConfig is the configuration of `vigil bugtool`.
type bugtoolConfig struct {
	Socket string
	Output string
	// ProcRoot, KernelConfigs: where the kernel's files are read (tests
	// point them elsewhere).
	ProcRoot string
}

func newBugtoolCommand(g *globals) *cobra.Command {
	cfg := &bugtoolConfig{ProcRoot: "/proc"}
	cmd := &cobra.Command{
		Use:   "bugtool",
		Short: "Write a tarball for a bug report: probe, status, config, logs, BPF statistics, kernel",
		Long: `bugtool collects what a bug report needs into one .tar.gz, as root on the
node, without bpftool:

  version.txt                  this binary's and the agent's version, BPF object hashes
  probe.txt, probe.json        the kernel feature probe (vigil probe)
  status.txt, status.json      the agent's status (vigil status)
  policies.txt                 the agent's policies (vigil policy list)
  config.json                  the agent's effective configuration
  agent.log                    the agent's last 1000 log lines (JSON lines)
  bpf-programs.txt, .json      the agent's BPF programs: id, type, runs and run
                               time (when the kernel's bpf_stats are on)
  bpf-maps.txt, .json          the agent's BPF maps: type, sizes, entries, fill
  kernel.txt                   release, version, lockdown, LSMs, BPF sysctls
  kernel-config.txt            the BPF, tracing, LSM and cgroup options of the
                               kernel's config, when /proc/config.gz or
                               /boot/config-RELEASE exists
  errors.txt                   what could not be collected, and why

Secrets never reach the tarball: the agent redacts its configuration and
logs itself (webhook tokens and URL credentials, authorization headers,
passwords, PEM blocks; key and token files are named by path only). What
needs the agent is left out, with the reason in errors.txt, when it does
not answer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Output == "" {
				host, _ := os.Hostname()
				cfg.Output = fmt.Sprintf("vigil-bugtool-%s-%s.tar.gz", host, time.Now().UTC().Format("20060102-150405"))
			}
			if !strings.HasSuffix(cfg.Output, ".tar.gz") && !strings.HasSuffix(cfg.Output, ".tgz") {
				return &exitError{code: 2, err: fmt.Errorf("--output %s: want a FILE.tar.gz", cfg.Output)}
			}
			files, problems := collectBugtool(cmd.Context(), cfg)
			dir := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(cfg.Output), ".tgz"), ".tar.gz")
			if err := writeTarball(cfg.Output, dir, files); err != nil {
				return &exitError{code: 1, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d files", cfg.Output, len(files))
			if len(problems) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), " (%d parts missing, see errors.txt)", len(problems))
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	cmd.Flags().StringVar(&cfg.Socket, "socket", defaultSocket, "the agent's control socket")
	cmd.Flags().StringVarP(&cfg.Output, "output", "o", "", "the tarball to write (default vigil-bugtool-HOST-TIME.tar.gz)")
	return cmd
}

// bugFile is one file of the tarball.
type bugFile struct {
	name string
	data []byte
}

func collectBugtool(ctx context.Context, cfg *bugtoolConfig) ([]bugFile, []string) {
	var files []bugFile
	var problems []string
	add := func(name string, data []byte) { files = append(files, bugFile{name, data}) }
	fail := func(part string, err error) { problems = append(problems, fmt.Sprintf("%s: %v", part, err)) }
	asJSON := func(v any) []byte {
		b, _ := json.MarshalIndent(v, "", "  ")
		return append(b, '\n')
	}
	client := agent.NewClient(cfg.Socket)
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()

	// The agent's view first: its status names its pid, whose BPF
	// objects are the ones to describe.
	rep := versionReport{Client: buildinfo.Get()}
	st, err := client.Status(actx)
	agentPID := 0
	if err != nil {
		fail("status", err)
		rep.AgentError = err.Error()
	} else {
		rep.Agent = &st.Build
		agentPID = st.PID
		var b bytes.Buffer
		printStatus(&b, st)
		add("status.txt", b.Bytes())
		add("status.json", asJSON(st))
		b.Reset()
		printPolicyList(&b, st.Policies)
		add("policies.txt", b.Bytes())
		if c, err := client.Config(actx); err != nil {
			fail("config", err)
		} else {
			add("config.json", c)
		}
		if l, err := client.Logs(actx); err != nil {
			fail("agent logs", err)
		} else {
			add("agent.log", l)
		}
	}
	var vb bytes.Buffer
	printVersion(&vb, rep)
	add("version.txt", vb.Bytes())

	if f, err := kprobes.Probe(nil); err != nil {
		fail("probe", err)
	} else {
		var b bytes.Buffer
		printProbeTable(&b, f)
		add("probe.txt", b.Bytes())
		add("probe.json", asJSON(f))
	}

	progs, maps, notes := bpfObjects(cfg.ProcRoot, agentPID)
	problems = append(problems, notes...)
	if progs != nil {
		add("bpf-programs.txt", programTable(progs))
		add("bpf-programs.json", asJSON(progs))
		add("bpf-maps.txt", mapTable(maps))
		add("bpf-maps.json", asJSON(maps))
	}

	add("kernel.txt", kernelFacts(cfg.ProcRoot))
	if kc, err := kernelConfig(cfg.ProcRoot); err != nil {
		fail("kernel config", err)
	} else {
		add("kernel-config.txt", kc)
	}
	if len(problems) > 0 {
		add("errors.txt", []byte(strings.Join(problems, "\n")+"\n"))
	}
	return files, problems
}

func writeTarball(path, dir string, files []bugFile) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	now := time.Now()
	for _, bf := range files {
		hdr := &tar.Header{Name: dir + "/" + bf.name, Mode: 0o600, Size: int64(len(bf.data)), ModTime: now, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
		if _, err := tw.Write(bf.data); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	for _, c := range []io.Closer{tw, zw, f} {
		if err := c.Close(); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

// bpfProgram is one BPF program, as the kernel describes it.
type bpfProgram struct {
	ID        uint32   `json:"id"`
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	Tag       string   `json:"tag"`
	RunCount  uint64   `json:"run_count"`
	RunTimeNS uint64   `json:"run_time_ns"`
	Verified  uint32   `json:"verified_insns,omitempty"`
	Maps      []uint32 `json:"map_ids,omitempty"`
}

// bpfMap is one BPF map; Entries is -1 where counting makes no sense
// (ring buffers, perf arrays, programs arrays).
type bpfMap struct {
	ID         uint32  `json:"id"`
	Name       string  `json:"name"`
	Type       string  `json:"type"`
	KeySize    uint32  `json:"key_size"`
	ValueSize  uint32  `json:"value_size"`
	MaxEntries uint32  `json:"max_entries"`
	Entries    int64   `json:"entries"`
	Fill       float64 `json:"fill"`
}

// bpfObjects describes the BPF programs and maps the agent (pid) holds,
// or, when the agent is unknown, every one on the node.
func bpfObjects(procRoot string, pid int) ([]bpfProgram, []bpfMap, []string) {
	var notes []string
	var progIDs, mapIDs []uint32
	if pid > 0 {
		var err error
		progIDs, mapIDs, err = heldBPFObjects(procRoot, pid)
		if err != nil {
			return nil, nil, []string{fmt.Sprintf("bpf objects of the agent (pid %d): %v", pid, err)}
		}
	} else {
		notes = append(notes, "bpf objects: the agent did not answer, so these are every program and map of the node")
		for id := ebpf.ProgramID(0); ; {
			next, err := ebpf.ProgramGetNextID(id)
			if err != nil {
				break
			}
			id = next
			progIDs = append(progIDs, uint32(id))
		}
		for id := ebpf.MapID(0); ; {
			next, err := ebpf.MapGetNextID(id)
			if err != nil {
				break
			}
			id = next
			mapIDs = append(mapIDs, uint32(id))
		}
	}
	progs := []bpfProgram{}
	for _, id := range progIDs {
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err != nil {
			continue
		}
		info, err := p.Info()
		if err != nil {
			p.Close()
			continue
		}
		bp := bpfProgram{ID: id, Name: info.Name, Type: info.Type.String(), Tag: info.Tag}
		if st, err := p.Stats(); err == nil {
			bp.RunCount, bp.RunTimeNS = st.RunCount, uint64(st.Runtime)
		}
		if n, ok := info.VerifiedInstructions(); ok {
			bp.Verified = n
		}
		if ids, ok := info.MapIDs(); ok {
			for _, m := range ids {
				bp.Maps = append(bp.Maps, uint32(m))
			}
		}
		p.Close()
		progs = append(progs, bp)
	}
	ran := false
	for _, p := range progs {
		ran = ran || p.RunTimeNS > 0
	}
	// The sysctl does not show statistics enabled through BPF_ENABLE_STATS
	// (--bpf-stats): only programs that never ran say they are off.
	if b, err := os.ReadFile(filepath.Join(procRoot, "sys/kernel/bpf_stats_enabled")); err == nil && strings.TrimSpace(string(b)) == "0" && !ran {
		notes = append(notes, "bpf statistics: the kernel's bpf_stats are off, so run counts and times are 0 (vigil agent --bpf-stats turns them on)")
	}
	maps := []bpfMap{}
	for _, id := range mapIDs {
		m, err := ebpf.NewMapFromID(ebpf.MapID(id))
		if err != nil {
			continue
		}
		info, err := m.Info()
		if err != nil {
			m.Close()
			continue
		}
		bm := bpfMap{ID: id, Name: info.Name, Type: info.Type.String(), KeySize: info.KeySize, ValueSize: info.ValueSize,
			MaxEntries: info.MaxEntries, Entries: countEntries(m, info)}
		if bm.Entries >= 0 && info.MaxEntries > 0 {
			bm.Fill = float64(bm.Entries) / float64(info.MaxEntries)
		}
		m.Close()
		maps = append(maps, bm)
	}
	return progs, maps, notes
}

// countEntries counts the keys of a hash-like map; arrays are full by
// construction; other kinds are -1.
func countEntries(m *ebpf.Map, info *ebpf.MapInfo) int64 {
	switch info.Type {
	case ebpf.Array, ebpf.PerCPUArray:
		return int64(info.MaxEntries)
	case ebpf.Hash, ebpf.LRUHash, ebpf.PerCPUHash, ebpf.LRUCPUHash, ebpf.LPMTrie:
	default:
		return -1
	}
	var n int64
	var prev any // nil, not a nil slice: the first key
	for n <= int64(info.MaxEntries) {
		k, err := m.NextKeyBytes(prev)
		if err != nil || k == nil {
			break
		}
		n++
		prev = k
	}
	return n
}

// heldBPFObjects lists the ids of the programs (also through links) and
// maps whose file descriptors process pid holds.
func heldBPFObjects(procRoot string, pid int) (progs, maps []uint32, err error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
		if err != nil || !strings.HasPrefix(link, "anon_inode:bpf") {
			continue
		}
		info, err := os.ReadFile(filepath.Join(dir, "fdinfo", fd.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			k, v, _ := strings.Cut(line, ":")
			id, perr := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if perr != nil || seen[k+v] {
				continue
			}
			switch k {
			case "prog_id":
				seen[k+v] = true
				progs = append(progs, uint32(id))
			case "map_id":
				seen[k+v] = true
				maps = append(maps, uint32(id))
			}
		}
	}
	return progs, maps, nil
}

func programTable(progs []bpfProgram) []byte {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID\tNAME\tTYPE\tRUNS\tRUN TIME\tAVG\tVERIFIED INSNS\n")
	for _, p := range progs {
		avg := "-"
		if p.RunCount > 0 {
			avg = fmt.Sprintf("%dns", p.RunTimeNS/p.RunCount)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%d\n", p.ID, p.Name, p.Type, p.RunCount, time.Duration(p.RunTimeNS), avg, p.Verified)
	}
	tw.Flush()
	return b.Bytes()
}

func mapTable(maps []bpfMap) []byte {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID\tNAME\tTYPE\tKEY\tVALUE\tMAX ENTRIES\tENTRIES\tFILL\n")
	for _, m := range maps {
		entries, fill := "-", "-"
		if m.Entries >= 0 {
			entries, fill = strconv.FormatInt(m.Entries, 10), fmt.Sprintf("%.1f%%", 100*m.Fill)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", m.ID, m.Name, m.Type, m.KeySize, m.ValueSize, m.MaxEntries, entries, fill)
	}
	tw.Flush()
	return b.Bytes()
}

// kernelFacts are the kernel's identity and the settings that change what
// BPF programs may do.
func kernelFacts(procRoot string) []byte {
	var b bytes.Buffer
	for _, f := range []struct{ label, path string }{
		{"release", filepath.Join(procRoot, "sys/kernel/osrelease")},
		{"version", filepath.Join(procRoot, "version")},
		{"cmdline", filepath.Join(procRoot, "cmdline")},
		{"unprivileged_bpf_disabled", filepath.Join(procRoot, "sys/kernel/unprivileged_bpf_disabled")},
		{"bpf_stats_enabled", filepath.Join(procRoot, "sys/kernel/bpf_stats_enabled")},
		{"bpf_jit_enable", filepath.Join(procRoot, "sys/net/core/bpf_jit_enable")},
		{"perf_event_paranoid", filepath.Join(procRoot, "sys/kernel/perf_event_paranoid")},
		{"lockdown", "/sys/kernel/security/lockdown"},
		{"lsm", "/sys/kernel/security/lsm"},
	} {
		v, err := os.ReadFile(f.path)
		val := strings.TrimSpace(string(v))
		if err != nil {
			val = "(" + err.Error() + ")"
		}
		if f.label == "cmdline" {
			val = redactCmdline(val)
		}
		fmt.Fprintf(&b, "%s: %s\n", f.label, val)
	}
	return b.Bytes()
}

// secretCmdline matches kernel command line parameters that carry secrets
// (some boot loaders pass keys and passwords there).
var secretCmdline = regexp.MustCompile(`(?i)^[^=]*(key|pass|secret|token|auth)[^=]*=`)

func redactCmdline(s string) string {
	f := strings.Fields(s)
	for i, p := range f {
		if m := secretCmdline.FindString(p); m != "" {
			f[i] = m + agent.Redacted
		}
	}
	return strings.Join(f, " ")
}

// kernelConfigOption matches the options of the kernel's config that
// matter to Vigil.
var kernelConfigOption = regexp.MustCompile(`^(# )?CONFIG_(BPF|DEBUG_INFO_BTF|KPROBE|UPROBE|FPROBE|FTRACE|FUNCTION_|DYNAMIC_FTRACE|TRACING|PERF_EVENTS|SECURITY|LSM|CGROUP|SOCK_CGROUP|NET_CLS_BPF|NET_ACT_BPF|XDP|IKCONFIG|KALLSYMS|MODULES|HAVE_EBPF_JIT|ARCH_SUPPORTS|TRACEPOINTS|HAVE_SYSCALL_TRACEPOINTS)`)

func kernelConfig(procRoot string) ([]byte, error) {
	var data []byte
	if f, err := os.Open(filepath.Join(procRoot, "config.gz")); err == nil {
		zr, err := gzip.NewReader(f)
		if err == nil {
			data, err = io.ReadAll(zr)
		}
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s/config.gz: %w", procRoot, err)
		}
	} else {
		rel, err := os.ReadFile(filepath.Join(procRoot, "sys/kernel/osrelease"))
		if err != nil {
			return nil, err
		}
		path := "/boot/config-" + strings.TrimSpace(string(rel))
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("neither %s/config.gz nor %s: %w", procRoot, path, err)
		}
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if kernelConfigOption.MatchString(line) {
			out = append(out, line)
		}
	}
	return []byte(strings.Join(out, "\n") + "\n"), nil
}
