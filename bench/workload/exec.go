package workload

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ExecStorm starts bin (no arguments, no open files) n times, one after
// the other, waiting for each to exit: fork+exec+exit+wait in a loop.
func ExecStorm(bin string, n int) (Result, error) {
	attr := &os.ProcAttr{}
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := runOnce(bin, attr); err != nil {
			return Result{}, fmt.Errorf("exec %d of %d: %w", i+1, n, err)
		}
	}
	return Result{Ops: int64(n), Seconds: since(start)}, nil
}

func runOnce(bin string, attr *os.ProcAttr) error {
	p, err := os.StartProcess(bin, []string{bin}, attr)
	if err != nil {
		return err
	}
	st, err := p.Wait()
	if err != nil {
		return err
	}
	if !st.Success() {
		return fmt.Errorf("%s: %v", bin, st)
	}
	return nil
}

// ExecSustained runs exec loops on workers goroutines for d and reports
// how many execs completed.
func ExecSustained(bin string, workers int, d time.Duration) (Result, error) {
	if workers < 1 {
		return Result{}, fmt.Errorf("workers %d: must be at least 1", workers)
	}
	attr := &os.ProcAttr{}
	var n atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := runOnce(bin, attr); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return Result{}, err
	}
	return Result{Ops: n.Load(), Seconds: since(start)}, nil
}
