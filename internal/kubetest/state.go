package kubetest

import (
	"sync"
	"testing"
	"time"
)

// State is what a watcher under test last handed to its callback, guarded
// for the test goroutine that waits for it to reach a condition: informers,
// sources and discovery loops call Update from their own goroutines, the
// test calls Await.
type State[T any] struct {
	mu sync.Mutex
	v  T
	ch chan struct{}
}

// NewState returns a State holding v.
func NewState[T any](v T) *State[T] {
	return &State[T]{v: v, ch: make(chan struct{}, 1)}
}

// Update changes the state under its lock and wakes a waiting Await.
func (s *State[T]) Update(f func(v *T)) {
	s.mu.Lock()
	f(&s.v)
	s.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

// Get returns the state through f, under the lock.
func (s *State[T]) Get(f func(v T)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.v)
}

// Await returns once cond holds for the state (cond runs under the lock),
// and fails the test after timeout naming what it waited for and what the
// state held then.
func (s *State[T]) Await(t testing.TB, timeout time.Duration, what string, cond func(v T) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok := cond(s.v)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.ch:
		case <-deadline.C:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("waiting %v for %s; it holds %+v", timeout, what, s.v)
		}
	}
}
