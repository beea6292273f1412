// Package browsertest runs pages in Debian's headless Chromium, driven with
// chromedp, for tests that check what a person sees. Chromium is installed
// through scripts/setup-host.sh --browser when it is missing (as root); a
// test skips, with the reason, only when it cannot be had.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigilsec/vigil/internal/kerneltest"
)

var (
	once     sync.Once
	execPath string
	whyNot   string
)

// repoRoot finds the module's root from the test's working directory.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

func find() {
	for _, n := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(n); err == nil {
			execPath = p
			return
		}
	}
	if os.Geteuid() != 0 {
		whyNot = "chromium is not installed and installing it needs root (scripts/setup-host.sh --browser)"
		return
	}
	root, err := repoRoot()
	if err != nil {
		whyNot = "chromium is not installed, and scripts/setup-host.sh --browser needs the source tree and Go (not in the VM tier): " + err.Error()
		return
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "setup-host.sh"), "--browser")
	if out, err := cmd.CombinedOutput(); err != nil {
		whyNot = "scripts/setup-host.sh --browser could not install chromium: " + err.Error() + "\n" + string(out)
		return
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		execPath = p
		return
	}
	whyNot = "chromium is still missing after scripts/setup-host.sh --browser"
}

// flags are Chromium's flags for tests: headless, and quiet on the
// network (no background requests).
var flags = []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
	"--disable-quic", "--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--disable-extensions", "--disable-dev-shm-usage"}

// Path returns the Chromium binary, installing it as New does, or skips.
func Path(t testing.TB) string {
	t.Helper()
	once.Do(find)
	if execPath == "" {
		kerneltest.Skip(t, "%s", whyNot)
	}
	return execPath
}

// Open starts a plain headless Chromium (no DevTools client) on url, as a
// person's browser would be, and returns a function that ends it.
func Open(t testing.TB, chromium, url string) (stop func()) {
	t.Helper()
	args := append(append([]string(nil), flags...), "--user-data-dir="+t.TempDir(), "--window-size=1400,900", url)
	cmd := exec.Command(chromium, args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	done := false
	stop = func() {
		if done {
			return
		}
		done = true
		cmd.Process.Kill()
		cmd.Wait()
	}
	t.Cleanup(stop)
	return stop
}

// New starts a headless Chromium for the test and returns a chromedp
// context of a new tab in it, sized width x height, and cancelled when the
// test ends.
func New(t testing.TB, width, height int) context.Context {
	t.Helper()
	once.Do(find)
	if execPath == "" {
		kerneltest.Skip(t, "%s", whyNot)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	// Start the browser now, so that a Chromium that cannot run fails here.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start %s: %v", execPath, err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return ctx
}

// Screenshot saves a PNG of the page into dir (created if needed; empty:
// $VIGIL_ARTIFACTS or the system's temporary directory) and logs its path.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	dir := os.Getenv("VIGIL_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "vigil-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return path
}

// WaitFor polls the JavaScript expression js until it is true, or fails the
// test after timeout with what, and the value of debug (a JavaScript
// expression describing the page).
func WaitFor(t testing.TB, ctx context.Context, what, js, debug string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			var state string
			if debug != "" {
				state, _ = chromedp.Run(ctx, chromedp.Evaluate[string](debug))
			}
			t.Fatalf("waiting for %s: %v (page: %s)", what, err, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
