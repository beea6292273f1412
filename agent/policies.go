package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/btf"
	"github.com/fsnotify/fsnotify"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/tracingpolicies"
	"github.com/vigilsec/vigil/tracingsensor"
)

// policyManager loads tracing policies from their sources (the embedded
// defaults, files and directories), applies changes to them live, and
// remembers what failed and why.
type policyManager struct {
	// started is set once the agent is ready: from then on each change of
	// the loaded policies drops the kernel's BTF it decoded once done.
	started atomic.Bool
	ts      *tracingsensor.Sensor
	log     logrus.FieldLogger
	tracefs fs.FS

	mu sync.Mutex
	// bySource lists the keys of the policies loaded from each source.
	bySource map[string][]string
	// failed holds the last error of each policy or source that did not
	// load, by policy key (or source name when it could not be parsed).
	failed map[string]failure
	// specs holds the parsed version of each loaded policy, and disabled
	// the policies `vigil policy disable` detached (see policy_runtime.go).
	specs    map[string]*tracingpolicies.Policy
	disabled map[string]*disabledPolicy
}

type failure struct {
	Source string
	Err    error
}

func newPolicyManager(ts *tracingsensor.Sensor, tracefsDir string, log logrus.FieldLogger) *policyManager {
	m := &policyManager{ts: ts, log: log, bySource: map[string][]string{}, failed: map[string]failure{},
		specs: map[string]*tracingpolicies.Policy{}, disabled: map[string]*disabledPolicy{}}
	if _, err := kprobes.KernelSpec(); err != nil {
		log.WithError(err).Warn("kernel BTF unavailable: policies are checked when they load")
	}
	if tracefsDir != "" {
		m.tracefs = os.DirFS(tracefsDir)
	}
	return m
}

// kernelSpec is the kernel's BTF that policies are checked against, from
// the cache every load shares (nil when the kernel has none).
func kernelSpec() *btf.Spec {
	spec, err := kprobes.KernelSpec()
	if err != nil {
		return nil
	}
	return spec
}

// loaded ends a change of the loaded policies: after start-up, the kernel's
// BTF decoded for it is released, so that an idle agent does not hold it
// (the next change decodes it once again).
func (m *policyManager) loaded() {
	if m.started.Load() {
		kprobes.ReleaseKernelTypes()
	}
}

// applySource makes the policies loaded from source exactly those in data:
// new ones are loaded, changed ones replaced (the new version attached
// before the old one is detached), removed ones unloaded. When data does
// not parse, nothing changes. It returns the problems found.
func (m *policyManager) applySource(source string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.loaded()
	log := m.log.WithField("source", source)

	policies, err := tracingpolicies.Parse(source, data)
	if err != nil {
		m.failed[source] = failure{Source: source, Err: err}
		log.WithError(err).Error("policy file refused; what was loaded from it keeps running")
		return err
	}
	delete(m.failed, source)

	var errs []error
	seen := map[string]bool{}
	for _, p := range policies {
		key := tracingsensor.Key(p.Namespace, p.Name)
		seen[key] = true
		if owner := m.owner(key); owner != "" && owner != source {
			err := p.Doc.Errorf("metadata.name", "policy %s is already loaded from %s", key, owner)
			m.failed[key] = failure{Source: source, Err: err}
			errs = append(errs, err)
			continue
		}
		for _, w := range p.Warnings {
			log.WithField("policy", key).Warn(w.Error())
		}
		if d := m.disabled[key]; d != nil && d.source == source {
			// Disabled stays disabled; enable loads this version.
			d.spec = p
			log.WithField("policy", key).Info("disabled policy changed; it stays disabled")
			continue
		}
		if warns, err := tracingpolicies.Validate(p, kernelSpec(), &tracingpolicies.ValidateOptions{Tracefs: m.tracefs}); err != nil {
			m.failed[key] = failure{Source: source, Err: err}
			errs = append(errs, err)
			log.WithField("policy", key).WithError(err).Error(m.notLoaded(key, "policy does not fit this kernel"))
			continue
		} else {
			for _, w := range warns {
				log.WithField("policy", key).Warn(w.Error())
			}
		}
		var loaded *tracingsensor.Policy
		if m.ts.Get(key) != nil {
			loaded, err = m.ts.Replace(p, source)
		} else {
			loaded, err = m.ts.Load(p, source)
		}
		if err != nil {
			m.failed[key] = failure{Source: source, Err: err}
			errs = append(errs, err)
			entry := log.WithField("policy", key).WithError(err)
			if strings.HasPrefix(source, "embedded:") {
				// A default the kernel cannot serve is expected on some
				// kernels (no module support, no BPF LSM).
				entry.Warn(m.notLoaded(key, "default policy not available on this kernel"))
			} else {
				entry.Error(m.notLoaded(key, "policy failed to load"))
			}
			continue
		}
		delete(m.failed, key)
		m.specs[key] = p
		hooks := loaded.Hooks()
		mechs := make([]string, len(hooks))
		for i, h := range hooks {
			mechs[i] = h.Target + "=" + string(h.Mechanism)
		}
		log.WithFields(logrus.Fields{"policy": key, "mode": loaded.Mode(), "hooks": strings.Join(mechs, ",")}).Info("policy loaded")
	}
	// Policies the source no longer has.
	var keep []string
	for _, key := range m.bySource[source] {
		if seen[key] {
			continue
		}
		if err := m.ts.Unload(key); err == nil {
			log.WithField("policy", key).Info("policy removed")
		}
		delete(m.failed, key)
		delete(m.specs, key)
		delete(m.disabled, key)
	}
	for key := range seen {
		if p := m.ts.Get(key); p != nil && p.Source == source {
			keep = append(keep, key)
		} else if d := m.disabled[key]; d != nil && d.source == source {
			keep = append(keep, key)
		}
	}
	sort.Strings(keep)
	m.bySource[source] = keep
	return errors.Join(errs...)
}

// notLoaded phrases a load failure, saying whether a previous version of
// the policy keeps running.
func (m *policyManager) notLoaded(key, what string) string {
	if m.ts.Get(key) != nil {
		return what + "; its previous version keeps running"
	}
	return what
}

// owner returns the source a loaded policy came from.
func (m *policyManager) owner(key string) string {
	for src, keys := range m.bySource {
		for _, k := range keys {
			if k == key {
				return src
			}
		}
	}
	if p := m.ts.Get(key); p != nil {
		return p.Source
	}
	return ""
}

// removeSource unloads every policy of a source that is gone.
func (m *policyManager) removeSource(source string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, key := range m.bySource[source] {
		if err := m.ts.Unload(key); err == nil {
			m.log.WithFields(logrus.Fields{"source": source, "policy": key}).Info("policy removed")
		}
		delete(m.failed, key)
		delete(m.specs, key)
		delete(m.disabled, key)
	}
	delete(m.bySource, source)
	delete(m.failed, source)
	for k, f := range m.failed {
		if f.Source == source {
			delete(m.failed, k)
		}
	}
}

// failures returns the current load failures.
func (m *policyManager) failures() map[string]failure {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]failure, len(m.failed))
	for k, v := range m.failed {
		out[k] = v
	}
	return out
}

// loadEmbedded loads the policies of an embedded file system.
func (m *policyManager) loadEmbedded(fsys fs.FS) error {
	var errs []error
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !manifest.IsManifestFile(p) {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		if err := m.applySource("embedded:"+p, data); err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	return errors.Join(append(errs, err)...)
}

// loadPath loads a file, or every YAML file below a directory. Sources are
// named by absolute path, as the watcher names them.
func (m *policyManager) loadPath(path string) error {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("--policy %s: %w", path, err)
	}
	files := []string{path}
	if fi.IsDir() {
		if files, err = manifest.Files(path); err != nil {
			return fmt.Errorf("--policy %s: %w", path, err)
		}
	}
	var errs []error
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := m.applySource(f, data); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// watch applies changes to the given files and directories until ctx ends.
// Changes are applied once a file has been quiet for a short while, so that
// an editor's write-rename dance is seen as one change.
func (m *policyManager) watch(ctx context.Context, paths []string) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch policies: %w", err)
	}
	defer w.Close()
	dirs := map[string]bool{}
	files := map[string]bool{} // files given directly
	for _, p := range paths {
		abs, _ := filepath.Abs(p)
		fi, err := os.Stat(abs)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			filepath.WalkDir(abs, func(q string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs[q] = true
				}
				return nil
			})
		} else {
			files[abs] = true
			dirs[filepath.Dir(abs)] = true
		}
	}
	for d := range dirs {
		if err := w.Add(d); err != nil {
			m.log.WithError(err).WithField("dir", d).Warn("cannot watch policy directory")
		}
	}
	relevant := func(name string) bool {
		if files[name] {
			return true
		}
		if !manifest.IsManifestFile(name) {
			return false
		}
		for _, p := range paths {
			abs, _ := filepath.Abs(p)
			if fi, err := os.Stat(abs); err == nil && fi.IsDir() && strings.HasPrefix(name, abs+string(filepath.Separator)) {
				return true
			}
		}
		return false
	}

	const quiet = 200 * time.Millisecond
	pending := map[string]time.Time{}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() && dirs[filepath.Dir(ev.Name)] {
					dirs[ev.Name] = true
					w.Add(ev.Name)
				}
			}
			if relevant(ev.Name) {
				pending[ev.Name] = time.Now()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			m.log.WithError(err).Warn("policy watch")
		case now := <-tick.C:
			for name, t := range pending {
				if now.Sub(t) < quiet {
					continue
				}
				delete(pending, name)
				m.reload(name)
			}
		}
	}
}

// reload applies the current content of a watched file, or removes its
// policies when it is gone.
func (m *policyManager) reload(name string) {
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		m.removeSource(name)
		return
	}
	if err != nil {
		m.log.WithError(err).WithField("source", name).Warn("read policy file")
		return
	}
	m.applySource(name, data)
}
