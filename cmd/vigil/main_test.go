package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// envRunAsVigil makes the test binary behave as the vigil command: TestMain
// then runs the CLI with the binary's arguments instead of the tests. Tests
// use it through runVigil to check what a user sees: the output, the exit
// status and the messages of a real process, with the credentials they
// choose.
const envRunAsVigil = "VIGIL_TEST_RUN_AS_VIGIL"

func TestMain(m *testing.M) {
	if os.Getenv(envRunAsVigil) == "1" {
		os.Exit(run())
	}
	os.Exit(m.Run())
}

// vigilResult is what one run of the vigil command produced.
type vigilResult struct {
	Stdout, Stderr string
	Code           int
}

// runVigil runs `vigil args...` as a child process (this test binary, see
// TestMain). With cred set, the child runs with those credentials.
func runVigil(t *testing.T, cred *syscall.Credential, args ...string) vigilResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// /proc/self/exe, resolved in the child, still names this binary after
	// the child dropped to another user who may not search its folder.
	cmd := exec.CommandContext(ctx, "/proc/self/exe", args...)
	cmd.Args[0] = "vigil"
	cmd.Env = append(os.Environ(), envRunAsVigil+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	res := vigilResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.Code = ee.ExitCode()
	default:
		t.Fatalf("run vigil %v: %v\nstderr: %s", args, err, res.Stderr)
	}
	return res
}
