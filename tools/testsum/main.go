package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("testsum", flag.ContinueOnError)
	fl.SetOutput(stderr)
	label := fl.String("label", "tests", "one word naming the run in the closing line")
	tag := fl.Bool("tag", false, "start every progress line with the label (for runs that share a terminal)")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: testsum [-label WORD] [-- go test -json ...]  (without a command, reads go test -json from stdin)")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *label == "" || strings.ContainsAny(*label, " \t:") {
		fmt.Fprintf(stderr, "testsum: -label: %q must be one word without a colon\n", *label)
		return 2
	}
	start := time.Now()
	s := newSummary(stdout)
	if *tag {
		s.progress = prefixWriter{w: stdout, prefix: "[" + *label + "] "}
	}
	var cmdErr error
	if cmdArgs := fl.Args(); len(cmdArgs) > 0 {
		cmdErr = runCommand(cmdArgs, s, stderr)
	} else if err := s.read(stdin); err != nil {
		fmt.Fprintln(stderr, "testsum: read:", err)
		return 2
	}
	fmt.Fprintf(stdout, "testsum: %s took %s\n", *label, time.Since(start).Round(100*time.Millisecond))
	failed := s.report(stdout, *label, cmdErr)
	if failed {
		return 1
	}
	return 0
}

// runCommand runs the command with its stdout read as go test -json and its
// stderr passed through.
func runCommand(args []string, s *summary, stderr io.Writer) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	// Ctrl-C reaches go test through the process group; testsum stays to
	// print what ran.
	signal.Ignore(os.Interrupt, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		return err
	}
	readErr := s.read(out)
	if err := cmd.Wait(); err != nil {
		return err
	}
	return readErr
}

// event is one line of go test -json (see go doc test2json), including the
// build events of Go 1.24 and newer.
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	Elapsed     float64
	ImportPath  string
	FailedBuild string
}

type testKey struct{ pkg, test string }

// summary accumulates a go test -json stream.
type summary struct {
	progress io.Writer

	passed, failed, skipped int
	testOut                 map[testKey][]string
	pkgOut                  map[string][]string
	buildOut                map[string][]string
	ranTests                map[string]bool
	// running are the tests started and not yet finished, in start order:
	// when a package times out, its panic (with the list of running tests)
	// is written as their output and they never finish.
	running        []testKey
	pkgFailedTests map[string]bool
	failedTests    []testKey
	unfinished     []testKey
	skippedTests   []testKey
	failedPkgs     []string
	// timed are the top-level tests that finished, with their time, for
	// the list of the slowest (where a run's minutes went).
	timed []timedTest
}

type timedTest struct {
	testKey
	elapsed float64
}

// slowest is how many of the slowest tests the report lists.
const slowest = 12

func newSummary(progress io.Writer) *summary {
	return &summary{
		progress:       progress,
		testOut:        map[testKey][]string{},
		pkgOut:         map[string][]string{},
		buildOut:       map[string][]string{},
		ranTests:       map[string]bool{},
		pkgFailedTests: map[string]bool{},
	}
}

func (s *summary) read(r io.Reader) error {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			s.line(line)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// line handles one line of the stream; lines that are not JSON events
// (messages of the go command) are printed as they are.
func (s *summary) line(line string) {
	var e event
	if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &e) != nil || e.Action == "" {
		fmt.Fprint(s.progress, line)
		return
	}
	k := testKey{e.Package, e.Test}
	switch e.Action {
	case "build-output":
		s.buildOut[e.ImportPath] = append(s.buildOut[e.ImportPath], e.Output)
	case "output":
		if e.Test != "" {
			s.testOut[k] = append(s.testOut[k], e.Output)
		} else {
			s.pkgOut[e.Package] = append(s.pkgOut[e.Package], e.Output)
		}
	case "run":
		s.ranTests[e.Package] = true
		if e.Test != "" {
			s.running = append(s.running, k)
		}
	case "pass", "fail", "skip":
		if e.Test != "" {
			s.testDone(k, e.Action)
			if !strings.Contains(e.Test, "/") {
				s.timed = append(s.timed, timedTest{k, e.Elapsed})
			}
			return
		}
		s.packageDone(e)
	}
}

func (s *summary) testDone(k testKey, action string) {
	s.running = slices.DeleteFunc(s.running, func(r testKey) bool { return r == k })
	switch action {
	case "pass":
		s.passed++
	case "fail":
		s.failed++
		s.failedTests = append(s.failedTests, k)
		s.pkgFailedTests[k.pkg] = true
	case "skip":
		s.skipped++
		s.skippedTests = append(s.skippedTests, k)
	}
}

func (s *summary) packageDone(e event) {
	switch {
	case e.Action == "fail":
		fmt.Fprintf(s.progress, "FAIL %s %.1fs\n", e.Package, e.Elapsed)
		// Tests of the package that never finished were running when it
		// died (a timeout, a crash of the test binary or of its VM): they
		// failed, and their output holds the panic and the running tests.
		for _, k := range s.running {
			if k.pkg == e.Package {
				s.unfinished = append(s.unfinished, k)
				s.pkgFailedTests[k.pkg] = true
			}
		}
		s.running = slices.DeleteFunc(s.running, func(r testKey) bool { return r.pkg == e.Package })
		if !s.pkgFailedTests[e.Package] {
			// The package failed without a failing test: it did not build,
			// its TestMain or the VM runner failed.
			s.failed++
			s.failedPkgs = append(s.failedPkgs, e.Package)
			if e.FailedBuild != "" {
				s.pkgOut[e.Package] = append(s.buildOut[e.FailedBuild], s.pkgOut[e.Package]...)
			}
		} else if len(s.pkgOut[e.Package]) > 0 {
			s.failedPkgs = append(s.failedPkgs, e.Package)
		}
	case s.ranTests[e.Package]:
		fmt.Fprintf(s.progress, "ok   %s %.1fs\n", e.Package, e.Elapsed)
	}
}

// report prints the failures, the skips and the closing count, and says
// whether the run failed.
func (s *summary) report(w io.Writer, label string, cmdErr error) bool {
	for _, k := range s.failedTests {
		fmt.Fprintf(w, "\n=== FAIL %s %s\n", k.pkg, k.test)
		fmt.Fprint(w, strings.Join(s.testOut[k], ""))
	}
	// A package that died mid-test: the innermost running test holds the
	// panic; its parents are listed as running.
	for _, k := range s.unfinished {
		fmt.Fprintf(w, "\n=== FAIL %s %s (did not finish: still running when the package stopped)\n", k.pkg, k.test)
		fmt.Fprint(w, strings.Join(s.testOut[k], ""))
		s.failed++
	}
	for _, p := range s.failedPkgs {
		if s.pkgFailedTests[p] {
			fmt.Fprintf(w, "\n=== output of %s outside its tests\n", p)
		} else {
			fmt.Fprintf(w, "\n=== FAIL %s (the package failed outside its tests)\n", p)
		}
		fmt.Fprint(w, strings.Join(s.pkgOut[p], ""))
	}
	if len(s.skippedTests) > 0 {
		fmt.Fprintln(w)
	}
	for _, k := range s.skippedTests {
		fmt.Fprintf(w, "SKIP %s %s: %s\n", k.pkg, k.test, skipReason(s.testOut[k]))
	}
	s.reportSlowest(w)
	failed := s.failed > 0
	if cmdErr != nil && !failed {
		fmt.Fprintf(w, "\ntestsum: the test command failed without a failing test: %v\n", cmdErr)
		s.failed++
		failed = true
	}
	fmt.Fprintf(w, "%s: %d passed, %d failed, %d skipped\n", label, s.passed, s.failed, s.skipped)
	return failed
}

// reportSlowest lists the slowest top-level tests, so that a run that
// grows says which tests it grew by.
func (s *summary) reportSlowest(w io.Writer) {
	if len(s.timed) < 2 {
		return
	}
	t := slices.Clone(s.timed)
	slices.SortStableFunc(t, func(a, b timedTest) int {
		switch {
		case a.elapsed > b.elapsed:
			return -1
		case a.elapsed < b.elapsed:
			return 1
		}
		return 0
	})
	t = t[:min(len(t), slowest)]
	fmt.Fprintf(w, "\nslowest tests:\n")
	for _, x := range t {
		fmt.Fprintf(w, "%7.1fs %s %s\n", x.elapsed, x.pkg, x.test)
	}
}

// skipReason is what a skipped test logged, without the framing lines.
func skipReason(out []string) string {
	var parts []string
	for _, l := range out {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, " ")
}

// prefixWriter starts every write (one line each) with a prefix.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}
