package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/agent/agenttest"
	"github.com/vigilsec/vigil/exporter"
)

// vigilStream is a long-running vigil command (vigil events) whose stdout
// is read line by line.
type vigilStream struct {
	t      *testing.T
	lines  chan string
	stderr *bytes.Buffer
}

// startVigil starts `vigil args...` (this test binary, see TestMain) and
// stops it at the end of the test.
func startVigil(t *testing.T, args ...string) *vigilStream {
	t.Helper()
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Args[0] = "vigil"
	cmd.Env = append(os.Environ(), envRunAsVigil+"=1")
	s := &vigilStream{t: t, lines: make(chan string, 4096), stderr: &bytes.Buffer{}}
	cmd.Stderr = s.stderr
	out, err := cmd.StdoutPipe()
	agenttest.FatalIf(t, err)
	agenttest.FatalIf(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return s
}

// next returns the first line for which match is true, and the lines
// before it.
func (s *vigilStream) next(what string, match func(string) bool) (string, []string) {
	s.t.Helper()
	var before []string
	timeout := time.After(agenttest.Timeout())
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				s.t.Fatalf("vigil stopped before %s; stderr: %s; lines: %q", what, s.stderr, before)
			}
			if match(l) {
				return l, before
			}
			before = append(before, l)
		case <-timeout:
			s.t.Fatalf("no %s within %v; lines: %q", what, agenttest.Timeout(), before)
		}
	}
}

// waitSubscribers waits until n live tails follow the agent (the harness
// has one of its own).
func waitSubscribers(t *testing.T, h *agenttest.Harness, n int) {
	t.Helper()
	deadline := time.Now().Add(agenttest.Timeout())
	for time.Now().Before(deadline) {
		mfs, err := h.Metrics().Gather()
		agenttest.FatalIf(t, err)
		for _, mf := range mfs {
			if mf.GetName() == "vigil_export_subscribers" && int(mf.GetMetric()[0].GetGauge().GetValue()) >= n {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("fewer than %d subscribers within %v", n, agenttest.Timeout())
}

// vigil events with tetra getevents's flags, against a real agent: the
// compact lines of a process that opens a watched file (exec, the policy
// event with its policy, exit), and nothing of the processes the flags
// leave out.
func TestPrivEventsCompact(t *testing.T) {
	dir := t.TempDir()
	watched := filepath.Join(dir, "watched")
	agenttest.FatalIf(t, os.MkdirAll(watched, 0o755))
	file := filepath.Join(watched, "a")
	agenttest.FatalIf(t, os.WriteFile(file, []byte("x"), 0o644))
	pol := agenttest.WritePolicy(t, t.TempDir(), "p.yaml", fmt.Sprintf(agenttest.OpenatPrefixPolicy, watched))
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{pol} })
	h.WaitPolicy("openat-watched")

	cat := agenttest.Resolved(t, "/bin/cat")
	compact := startVigil(t, "events", "--socket", h.Socket, "-o", "compact", "--process", filepath.Base(cat)+"$", "--color", "never")
	js := startVigil(t, "events", "--socket", h.Socket, "--event-types", "PROCESS_EXEC", "--policy-names", "no-such-policy",
		"--event-types", "PROCESS_KPROBE", "--process", filepath.Base(cat)+"$")
	stamped := startVigil(t, "events", "--socket", h.Socket, "-o", "compact", "--timestamps", "--host",
		"-e", "PROCESS_KPROBE", "--policy-names", "openat-watched")
	waitSubscribers(t, h, 4)

	agenttest.FatalIf(t, agenttest.Command(t, "/bin/true", "not-"+filepath.Base(cat)).Run())
	agenttest.FatalIf(t, agenttest.Command(t, "/bin/cat", file).Run())

	exec, before := compact.next("exec line", func(l string) bool { return strings.HasPrefix(l, "🚀 process") && strings.Contains(l, file) })
	if want := "🚀 process " + cat + " " + file; exec != want {
		t.Errorf("exec line\n got %q\nwant %q", exec, want)
	}
	open, more := compact.next("open line", func(l string) bool { return strings.Contains(l, "[openat-watched]") })
	if want := "📬 openat  " + cat + " " + file + " "; !strings.HasPrefix(open, want) {
		t.Errorf("open line\n got %q\nwant it to start with %q", open, want)
	}
	exit, rest := compact.next("exit line", func(l string) bool { return strings.HasPrefix(l, "💥 exit") && strings.Contains(l, file) })
	if want := "💥 exit    " + cat + " " + file + " 0"; exit != want {
		t.Errorf("exit line\n got %q\nwant %q", exit, want)
	}
	for _, l := range append(append(before, more...), rest...) {
		if !strings.Contains(l, cat) && !strings.HasPrefix(l, "⚠️ lost") {
			t.Errorf("--process %s$ let through %q", filepath.Base(cat), l)
		}
	}

	// --policy-names selects policy events only: an exec has no policy,
	// and no event comes from no-such-policy. The stamped stream has the
	// open, with its time first.
	line, _ := stamped.next("stamped open line", func(l string) bool { return strings.Contains(l, file) })
	ts, rest0, _ := strings.Cut(line, " ")
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasPrefix(rest0, "📬 openat  "+cat) {
		t.Errorf("stamped line %q: time %q (%v)", line, ts, err)
	}
	select {
	case l := <-js.lines:
		t.Errorf("--event-types PROCESS_EXEC,PROCESS_KPROBE --policy-names no-such-policy printed %q", l)
	default:
	}
}

// listLine returns the line of `vigil policy list` for name.
func listLine(t *testing.T, socket, name string) string {
	t.Helper()
	res := runVigil(t, nil, "policy", "list", "--socket", socket)
	if res.Code != 0 {
		t.Fatalf("vigil policy list: exit %d: %s", res.Code, res.Stderr)
	}
	for _, l := range strings.Split(res.Stdout, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return l
		}
	}
	return ""
}

// vigil policy add | disable | enable | delete against a real agent: a bad
// file is refused with validate's lines and nothing loads; a good one loads
// at run time and reports events; disabled, its programs are gone and it
// reports nothing; enabled, it reports again; a watched file's policy
// cannot be deleted, an added one can.
func TestPrivPolicyRuntime(t *testing.T) {
	dir := t.TempDir()
	fileA, fileB := filepath.Join(dir, "a", "f"), filepath.Join(dir, "b", "f")
	for _, f := range []string{fileA, fileB} {
		agenttest.FatalIf(t, os.MkdirAll(filepath.Dir(f), 0o755))
		agenttest.FatalIf(t, os.WriteFile(f, []byte("x"), 0o644))
	}
	polDir := t.TempDir()
	watchedFile := agenttest.WritePolicy(t, polDir, "a.yaml", fmt.Sprintf(agenttest.OpenatPrefixPolicy, filepath.Dir(fileA)))
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{polDir} })
	h.WaitPolicy("openat-watched")
	sock := h.Socket
	cliPolicy := strings.Replace(fmt.Sprintf(agenttest.OpenatPrefixPolicy, filepath.Dir(fileB)), "name: openat-watched", "name: cli-open", 1)

	// A bad file: the same lines as validate, exit 1, nothing loaded.
	bad := agenttest.WritePolicy(t, t.TempDir(), "bad.yaml", cliPolicy+"    bogus: 1\n")
	val := runVigil(t, nil, "policy", "validate", bad)
	add := runVigil(t, nil, "policy", "add", "--socket", sock, bad)
	if add.Code != 1 || val.Code != 1 || add.Stdout != val.Stdout || !strings.Contains(add.Stdout, bad+":") ||
		!strings.Contains(add.Stderr, "nothing was loaded") {
		t.Errorf("add of a bad file: exit %d, stdout %q, stderr %q; validate printed %q", add.Code, add.Stdout, add.Stderr, val.Stdout)
	}
	// A file whose second policy takes a name in use: refused by the
	// agent, the first policy not loaded either.
	clash := agenttest.WritePolicy(t, t.TempDir(), "clash.yaml", cliPolicy+"---\n"+fmt.Sprintf(agenttest.OpenatPrefixPolicy, dir))
	add = runVigil(t, nil, "policy", "add", "--socket", sock, clash)
	if add.Code != 1 || !strings.Contains(add.Stdout, clash+":") ||
		!strings.Contains(add.Stdout, "metadata.name: policy openat-watched is already loaded from "+watchedFile) {
		t.Errorf("add of a clashing file: exit %d, stdout %q, stderr %q", add.Code, add.Stdout, add.Stderr)
	}
	if l := listLine(t, sock, "cli-open"); l != "" {
		t.Errorf("a refused file left %q", l)
	}

	good := agenttest.WritePolicy(t, t.TempDir(), "good.yaml", cliPolicy)
	add = runVigil(t, nil, "policy", "add", "--socket", sock, good)
	if add.Code != 0 || add.Stdout != "cli-open: added (runtime only: gone when the agent restarts)\n" {
		t.Fatalf("add: exit %d, stdout %q, stderr %q", add.Code, add.Stdout, add.Stderr)
	}
	if l := listLine(t, sock, "cli-open"); !strings.Contains(l, " loaded ") || !strings.HasSuffix(l, "cli:"+good+" (runtime only)") {
		t.Errorf("list line of the added policy: %q", l)
	}
	pid := catUntilSeen(t, h, "cli-open", fileA, fileB)
	h.WaitFor("event of the watched policy, with the added one", agenttest.KprobeOf("process_kprobe", pid, "openat-watched"))

	progs, _ := agenttest.CountGenericObjects(t)
	if res := runVigil(t, nil, "policy", "disable", "--socket", sock, "cli-open"); res.Code != 0 || res.Stdout != "cli-open: disabled\n" {
		t.Fatalf("disable: exit %d, stdout %q, stderr %q", res.Code, res.Stdout, res.Stderr)
	}
	if after, _ := agenttest.CountGenericObjects(t); after >= progs {
		t.Errorf("disabled, the agent still holds %d generic programs (%d before)", after, progs)
	}
	if l := listLine(t, sock, "cli-open"); !strings.Contains(l, " disabled ") || !strings.HasSuffix(l, "(runtime only)") {
		t.Errorf("list line of the disabled policy: %q", l)
	}
	// One process opens both files: the enabled policy reports A, the
	// disabled one nothing of B (its exit comes after both opens).
	pid = catUntilSeen(t, h, "openat-watched", fileA, fileB)
	h.WaitFor("exit of cat", agenttest.ExitOf(pid))
	if evs := h.All(agenttest.KprobeOf("process_kprobe", pid, "cli-open")); len(evs) > 0 {
		t.Errorf("the disabled policy reported %v", evs[0])
	}

	if res := runVigil(t, nil, "policy", "enable", "--socket", sock, "cli-open"); res.Code != 0 || res.Stdout != "cli-open: enabled\n" {
		t.Fatalf("enable: exit %d, stdout %q, stderr %q", res.Code, res.Stdout, res.Stderr)
	}
	catUntilSeen(t, h, "cli-open", fileB)

	res := runVigil(t, nil, "policy", "delete", "--socket", sock, "openat-watched")
	if want := "policy openat-watched comes from " + watchedFile + ", which the agent watches"; res.Code != 1 || !strings.Contains(res.Stderr, want) {
		t.Errorf("delete of a watched file's policy: exit %d, stderr %q; want %q", res.Code, res.Stderr, want)
	}
	if res := runVigil(t, nil, "policy", "delete", "--socket", sock, "cli-open"); res.Code != 0 || res.Stdout != "cli-open: deleted\n" {
		t.Errorf("delete: exit %d, stdout %q, stderr %q", res.Code, res.Stdout, res.Stderr)
	}
	if l := listLine(t, sock, "cli-open"); l != "" {
		t.Errorf("deleted policy still listed: %q", l)
	}
	if res := runVigil(t, nil, "policy", "enable", "--socket", sock, "cli-open"); res.Code != 1 || !strings.Contains(res.Stderr, `no disabled policy named "cli-open"`) {
		t.Errorf("enable of a deleted policy: exit %d, stderr %q", res.Code, res.Stderr)
	}
}

// catUntilSeen runs cat on files until policy reports its open, and
// returns that cat's pid: on a busy machine the ring buffer may lose a
// record (the agent says so in lost_events), so a few tries are allowed.
func catUntilSeen(t *testing.T, h *agenttest.Harness, policy string, files ...string) int {
	t.Helper()
	for try := 0; try < 5; try++ {
		cmd := agenttest.Command(t, "/bin/cat", files...)
		agenttest.FatalIf(t, cmd.Run())
		if _, ok := h.Find(agenttest.Timeout()/4, agenttest.KprobeOf("process_kprobe", cmd.Process.Pid, policy)); ok {
			return cmd.Process.Pid
		}
		t.Logf("no event of %s for cat %v (pid %d), trying again", policy, files, cmd.Process.Pid)
	}
	t.Fatalf("%s reported none of 5 cats of %v", policy, files)
	return 0
}

// vigil status and vigil version against a real agent: what the kernel
// offers and the agent uses, its sensors, policies, ring buffer and export
// health, with the losses by reason.
func TestPrivStatusAndVersion(t *testing.T) {
	pol := agenttest.WritePolicy(t, t.TempDir(), "p.yaml", fmt.Sprintf(agenttest.OpenatPrefixPolicy, t.TempDir()))
	h := agenttest.StartAgent(t, func(c *agent.Config) {
		c.Policies = []string{pol}
		c.Export.Denylist = `{"binary_regex":["/denied-by-test$"]}`
	})
	h.WaitPolicy("openat-watched")
	// One exec the export filters drop: lost, reason filtered.
	denied := filepath.Join(t.TempDir(), "denied-by-test")
	agenttest.CopyExecutable(t, "/bin/true", denied)
	agenttest.FatalIf(t, agenttest.CommandAs(denied, "true").Run()) // busybox on the VMs
	marker := agenttest.Command(t, "/bin/true", "status-marker")
	agenttest.FatalIf(t, marker.Run())
	h.WaitFor("exec of the marker", agenttest.ExecOf(marker.Process.Pid))

	res := runVigil(t, nil, "status", "--socket", h.Socket, "-o", "json")
	if res.Code != 0 {
		t.Fatalf("vigil status -o json: exit %d: %s", res.Code, res.Stderr)
	}
	var st agent.Status
	agenttest.FatalIf(t, json.Unmarshal([]byte(res.Stdout), &st))
	release, err := os.ReadFile("/proc/sys/kernel/osrelease")
	agenttest.FatalIf(t, err)
	if st.Node != "test-node" || !st.Ready || st.Kernel.Release != strings.TrimSpace(string(release)) || st.Build.Version != "dev" {
		t.Errorf("status: node %q, ready %v, kernel %q, version %q", st.Node, st.Ready, st.Kernel.Release, st.Build.Version)
	}
	var sensors []string
	for _, s := range st.Sensors {
		sensors = append(sensors, s.Name)
	}
	if strings.Join(sensors, ",") != "process,tracing,flows" || st.Sensors[0].Mechanism == "" {
		t.Errorf("sensors %+v", st.Sensors)
	}
	if len(st.Hooks) == 0 || len(st.Features) == 0 || st.PolicyStates["loaded"] != 1 {
		t.Errorf("hooks %d, features %d, policy states %v", len(st.Hooks), len(st.Features), st.PolicyStates)
	}
	if st.Ring.SizeBytes == 0 || st.Ring.Records == 0 || st.Export.Events["process_exec"] == 0 {
		t.Errorf("ring %+v, exported %v", st.Ring, st.Export.Events)
	}
	filtered := false
	for _, l := range st.Export.Lost {
		filtered = filtered || (l.Reason == "filtered" && l.Count >= 1)
	}
	if !filtered || len(st.Export.Sinks) != 1 || st.Export.Sinks[0].Name != "file" || st.Export.Sinks[0].CapacityBytes != 8<<20 {
		t.Errorf("lost %+v, sinks %+v", st.Export.Lost, st.Export.Sinks)
	}

	res = runVigil(t, nil, "status", "--socket", h.Socket)
	for _, want := range []string{
		"Agent:     vigil dev (commit ", " on node test-node, up ", ", ready\n",
		"Kernel:    " + st.Kernel.Release + " (BTF yes",
		"\nprocess  " + st.Sensors[0].Mechanism,
		"\nPolicies:  1 loaded\n", "openat-watched  loaded  enforce",
		"\nRing buffer: 8 MiB, ", "Lost:      filtered ",
		"\nfile  ", "% of 8 MiB\n", "Live tails: ",
	} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("vigil status lacks %q:\n%s", want, res.Stdout)
		}
	}

	res = runVigil(t, nil, "version", "--socket", h.Socket)
	if res.Code != 0 || !strings.Contains(res.Stdout, "vigil   dev\n") || !strings.Contains(res.Stdout, "bpf     generic_x86_bpfel.o sha256:") ||
		!strings.Contains(res.Stdout, "agent   dev (commit ") || !strings.Contains(res.Stdout, "same BPF objects)") {
		t.Errorf("vigil version: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
}

// readTarball returns the files of a .tar.gz by base name.
func readTarball(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	agenttest.FatalIf(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	agenttest.FatalIf(t, err)
	tr := tar.NewReader(zr)
	out := map[string]string{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		agenttest.FatalIf(t, err)
		b, err := io.ReadAll(tr)
		agenttest.FatalIf(t, err)
		out[filepath.Base(hdr.Name)] = string(b)
	}
}

// vigil bugtool against an agent that has secrets in its configuration:
// every part is in the tarball, and no secret is anywhere in it.
func TestPrivBugtool(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	hook := strings.Replace(srv.URL, "http://", "http://siem-user:hunter2-pass@", 1) + "/ingest?token=s3cr3t-query-token&tenant=t1"
	h := agenttest.StartAgent(t, func(c *agent.Config) {
		c.BPFStats = true
		c.Export.Webhook = hook
		c.Export.WebhookHeaders = []string{"Authorization: Bearer s3cr3t-bearer-token"}
		c.Export.WebhookSpoolDir = t.TempDir()
		c.Export.WebhookBatchInterval = exporter.Duration(50 * time.Millisecond)
	})
	agenttest.FatalIf(t, agenttest.Command(t, "/bin/true", "bugtool").Run())

	out := filepath.Join(t.TempDir(), "report.tar.gz")
	res := runVigil(t, nil, "bugtool", "--socket", h.Socket, "-o", out)
	if res.Code != 0 || !strings.HasPrefix(res.Stdout, out+": ") {
		t.Fatalf("bugtool: exit %d, stdout %q, stderr %q", res.Code, res.Stdout, res.Stderr)
	}
	files := readTarball(t, out)
	if strings.Contains(files["errors.txt"], "bpf statistics") {
		t.Errorf("with --bpf-stats, errors.txt says: %s", files["errors.txt"])
	}
	for _, name := range []string{"version.txt", "probe.txt", "probe.json", "status.txt", "status.json", "policies.txt",
		"config.json", "agent.log", "bpf-programs.txt", "bpf-programs.json", "bpf-maps.txt", "bpf-maps.json", "kernel.txt"} {
		if files[name] == "" {
			t.Errorf("the tarball has no %s (errors.txt: %q)", name, files["errors.txt"])
		}
	}
	for name, text := range files {
		for _, secret := range []string{"hunter2", "siem-user", "s3cr3t"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds the secret %q", name, secret)
			}
		}
	}
	if !strings.Contains(files["config.json"], `"Authorization: <redacted>"`) || !strings.Contains(files["config.json"], `"export-webhook": "http://<redacted>@127.0.0.1:`) {
		t.Errorf("config.json:\n%s", files["config.json"])
	}
	if !strings.Contains(files["agent.log"], `"msg":"agent ready"`) {
		t.Errorf("agent.log lacks the agent's start:\n%s", files["agent.log"])
	}
	var st agent.Status
	agenttest.FatalIf(t, json.Unmarshal([]byte(files["status.json"]), &st))
	release, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	if st.Node != "test-node" || !strings.Contains(files["kernel.txt"], "release: "+strings.TrimSpace(string(release))+"\n") {
		t.Errorf("status node %q; kernel.txt:\n%s", st.Node, files["kernel.txt"])
	}
	var progs []bpfProgram
	agenttest.FatalIf(t, json.Unmarshal([]byte(files["bpf-programs.json"]), &progs))
	ran := false
	for _, p := range progs {
		ran = ran || p.RunCount > 0 && p.RunTimeNS > 0
	}
	if len(progs) == 0 || !ran {
		t.Errorf("with --bpf-stats, no program of the agent has runs: %+v", progs)
	}
	var maps []bpfMap
	agenttest.FatalIf(t, json.Unmarshal([]byte(files["bpf-maps.json"]), &maps))
	filled := false
	for _, m := range maps {
		filled = filled || m.Type == "Hash" && m.Entries > 0 && m.Fill > 0
	}
	if !filled {
		t.Errorf("no hash map of the agent has entries (the process table is seeded from /proc): %+v", maps)
	}
	if !strings.Contains(files["bpf-maps.txt"], "MAX ENTRIES") || !strings.Contains(files["bpf-programs.txt"], "RUN TIME") {
		t.Errorf("tables:\n%s\n%s", files["bpf-maps.txt"], files["bpf-programs.txt"])
	}
}

// A disabled policy of a watched file stays disabled when the file
// changes, and enable loads the changed version.
func TestPrivPolicyDisabledFileChange(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	agenttest.FatalIf(t, os.WriteFile(file, []byte("x"), 0o644))
	polDir := t.TempDir()
	text := fmt.Sprintf(agenttest.OpenatPrefixPolicy, dir)
	path := agenttest.WritePolicy(t, polDir, "a.yaml", text)
	h := agenttest.StartAgent(t, func(c *agent.Config) { c.Policies = []string{polDir} })
	h.WaitPolicy("openat-watched")
	if res := runVigil(t, nil, "policy", "disable", "--socket", h.Socket, "openat-watched"); res.Code != 0 {
		t.Fatalf("disable: exit %d: %s", res.Code, res.Stderr)
	}
	agenttest.FatalIf(t, os.WriteFile(path, []byte(strings.Replace(text, "watched file opened", "changed while disabled", 1)), 0o644))
	// The agent says in its log when it has read the change.
	deadline := time.Now().Add(agenttest.Timeout())
	for {
		logs, err := agent.NewClient(h.Socket).Logs(t.Context())
		agenttest.FatalIf(t, err)
		if bytes.Contains(logs, []byte("disabled policy changed; it stays disabled")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not read the changed file within %v", agenttest.Timeout())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if l := listLine(t, h.Socket, "openat-watched"); !strings.Contains(l, " disabled ") {
		t.Errorf("after its file changed: %q", l)
	}
	if res := runVigil(t, nil, "policy", "enable", "--socket", h.Socket, "openat-watched"); res.Code != 0 {
		t.Fatalf("enable: exit %d: %s", res.Code, res.Stderr)
	}
	pid := catUntilSeen(t, h, "openat-watched", file)
	e := h.WaitFor("event", agenttest.KprobeOf("process_kprobe", pid, "openat-watched"))
	if got := e.Str("process_kprobe.message"); got != "changed while disabled" {
		t.Errorf("enabled policy's message %q: not the changed version", got)
	}
}
