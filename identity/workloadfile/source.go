package workloadfile

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/vigilsec/vigil/identity/source"
	"github.com/vigilsec/vigil/internal/manifest"
)

const (
	// debounce gathers the events of one write of a file (a rename into
	// place is one event; a file written in place makes a few).
	debounce = 10 * time.Millisecond
	// settle is how long a file that changed and does not parse is given
	// to be written in full before its problems are reported: a file
	// written in place is empty or cut short for a moment.
	settle = 150 * time.Millisecond
)

// Source reports the workloads of files and directories, and follows their
// changes.
type Source struct {
	name  string
	paths []string
	// state holds what each file gave; a file is parsed again only when
	// its bytes change.
	state map[string]*fileState
}

// fileState is one file as last read.
type fileState struct {
	sum [sha256.Size]byte
	// good are its last workloads that parsed; err the problems of its
	// current bytes.
	good    []source.Pod
	err     error
	changed time.Time
}

var _ source.Source = (*Source)(nil)

// NewSource returns a source reading the Workload documents of paths:
// files, or directories whose *.yaml, *.yml and *.json files are read.
func NewSource(name string, paths []string) *Source {
	return &Source{name: name, paths: paths, state: map[string]*fileState{}}
}

// Name implements source.Source.
func (s *Source) Name() string { return s.name }

// Run implements source.Source. A file with errors is reported through
// sink.Failed with every problem; its previous workloads stay in force
// until it parses again. A removed file's workloads go.
func (s *Source) Run(ctx context.Context, sink source.Sink) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch workload files: %w", err)
	}
	defer w.Close()
	// Watch the directories: editors and config management replace files
	// by renaming, which a watch on the file itself would not survive.
	watched := map[string]bool{}
	for _, p := range s.paths {
		dir := p
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			dir = filepath.Dir(p)
		}
		if !watched[dir] {
			if err := w.Add(dir); err != nil {
				sink.Failed(s.name, "watch", fmt.Errorf("watch %s: %w", dir, err))
			}
			watched[dir] = true
		}
	}
	retry := s.load(sink)
	sink.Synced(s.name)
	timer := time.NewTimer(settle)
	defer timer.Stop()
	var fire <-chan time.Time
	if retry {
		fire = timer.C
	} else {
		timer.Stop()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if !s.relevant(ev.Name) {
				continue
			}
			timer.Reset(debounce)
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			sink.Failed(s.name, "watch", err)
		case <-fire:
			fire = nil
			if s.load(sink) {
				timer.Reset(settle)
				fire = timer.C
			}
		}
	}
}

// relevant tells whether a changed file is one of ours.
func (s *Source) relevant(name string) bool {
	for _, p := range s.paths {
		if filepath.Clean(name) == filepath.Clean(p) {
			return true
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() && filepath.Dir(name) == filepath.Clean(p) && manifest.IsManifestFile(name) {
			return true
		}
	}
	return false
}

// load reads every file and reports the union of their workloads. A file
// whose bytes did not change is not parsed again. It returns true when a
// file that changed a moment ago does not parse: its problems are reported
// only if they are still there at the next load, settle later.
func (s *Source) load(sink source.Sink) (retry bool) {
	files, missing := s.files()
	present := map[string]bool{}
	var failed []error
	now := time.Now()
	for _, f := range files {
		present[f] = true
		data, err := os.ReadFile(f)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		st := s.state[f]
		if st == nil {
			st = &fileState{}
			s.state[f] = st
		}
		if sum := sha256.Sum256(data); sum != st.sum || st.changed.IsZero() {
			st.sum, st.changed = sum, now
			pods, err := Parse(f, data)
			if st.err = err; err == nil {
				st.good = pods
			}
		}
		if st.err != nil {
			if now.Sub(st.changed) < settle {
				retry = true
				continue
			}
			failed = append(failed, st.err)
		}
	}
	for f := range s.state {
		if !present[f] {
			delete(s.state, f)
		}
	}
	failed = append(failed, missing...)
	names := make([]string, 0, len(s.state))
	for f := range s.state {
		names = append(names, f)
	}
	sort.Strings(names)
	var all []source.Pod
	seen := map[string]string{}
	for _, f := range names {
		for _, p := range s.state[f].good {
			if other, dup := seen[p.Key]; dup {
				failed = append(failed, fmt.Errorf("%s: workload %s is also defined in %s; the first one is used", f, p.Key, other))
				continue
			}
			seen[p.Key] = f
			all = append(all, p)
		}
	}
	sink.Replace(s.name, all)
	if err := errors.Join(failed...); err != nil {
		sink.Failed(s.name, "parse", err)
	} else if !retry {
		sink.Recovered(s.name)
	}
	return retry
}

// files lists the workload files, and the configured paths that are gone.
func (s *Source) files() ([]string, []error) {
	var out []string
	var errs []error
	for _, p := range s.paths {
		fi, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("workloads file %s: %w", p, err))
				continue
			}
			errs = append(errs, err)
			continue
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		fs, err := manifest.Files(p)
		if err != nil {
			errs = append(errs, err)
		}
		out = append(out, fs...)
	}
	return out, errs
}
