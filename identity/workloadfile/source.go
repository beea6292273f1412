package workloadfile

import (
	"context"
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

// debounce gathers the bursts of events an editor's save makes.
const debounce = 100 * time.Millisecond

// Source reports the workloads of files and directories, and follows their
// changes.
type Source struct {
	name  string
	paths []string
	// good holds each file's last workloads that parsed.
	good map[string][]source.Pod
}

var _ source.Source = (*Source)(nil)

// NewSource returns a source reading the Workload documents of paths:
// files, or directories whose *.yaml, *.yml and *.json files are read.
func NewSource(name string, paths []string) *Source {
	return &Source{name: name, paths: paths, good: map[string][]source.Pod{}}
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
	s.load(sink)
	sink.Synced(s.name)
	var timer *time.Timer
	var fire <-chan time.Time
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
			if timer == nil {
				timer = time.NewTimer(debounce)
			} else {
				timer.Reset(debounce)
			}
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			sink.Failed(s.name, "watch", err)
		case <-fire:
			fire = nil
			s.load(sink)
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

// load reads every file and reports the union of their workloads.
func (s *Source) load(sink source.Sink) {
	files, missing := s.files()
	present := map[string]bool{}
	var failed []error
	for _, f := range files {
		present[f] = true
		data, err := os.ReadFile(f)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		pods, err := Parse(f, data)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		s.good[f] = pods
	}
	for f := range s.good {
		if !present[f] {
			delete(s.good, f)
		}
	}
	failed = append(failed, missing...)
	names := make([]string, 0, len(s.good))
	for f := range s.good {
		names = append(names, f)
	}
	sort.Strings(names)
	var all []source.Pod
	seen := map[string]string{}
	for _, f := range names {
		for _, p := range s.good[f] {
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
	} else {
		sink.Recovered(s.name)
	}
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
