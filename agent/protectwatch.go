package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/tracingsensor"
)

// protectedBinaries keeps --protect-binaries current while the agent runs:
// a package upgrade that replaces containerd or re-points runc's symbolic
// link to a new version, or a runtime installed after the agent started,
// is protected as soon as its directory changes, without a restart.
// Protection is only ever added: a binary replaced by remove-then-create
// must not lose it in between, and processes running a removed file keep
// the path they were started from.
type protectedBinaries struct {
	patterns []string
	path     string // $PATH
	roots    []string
	ts       *tracingsensor.Sensor
	log      logrus.FieldLogger
}

// resolve finds what the patterns find now.
func (p *protectedBinaries) resolve() ([]string, error) {
	return tracingsensor.ResolveBinaries(p.patterns, p.path, p.roots...)
}

// run watches the directories the patterns are looked up in until ctx
// ends, and protects what appears in them.
func (p *protectedBinaries) run(ctx context.Context, found []string) error {
	if len(p.patterns) == 0 {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		p.log.WithError(err).Warn("cannot watch the directories of --protect-binaries; programs installed later are protected after a restart")
		return nil
	}
	defer w.Close()
	watched := map[string]bool{}
	watch := func(found []string) {
		for _, d := range tracingsensor.SearchDirs(p.patterns, p.path, found) {
			for _, root := range p.roots {
				dir := strings.TrimSuffix(root, "/") + d
				if watched[dir] {
					continue
				}
				if st, err := os.Stat(dir); err != nil || !st.IsDir() {
					continue
				}
				if err := w.Add(dir); err != nil {
					p.log.WithError(err).WithField("dir", dir).Debug("cannot watch a directory of --protect-binaries")
					continue
				}
				watched[dir] = true
			}
		}
	}
	watch(found)
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op&(fsnotify.Create|fsnotify.Rename|fsnotify.Chmod|fsnotify.Write) != 0 && timer == nil {
				timer = time.After(filesDebounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			p.log.WithError(err).Debug("watch of --protect-binaries")
			timer = time.After(filesDebounce) // events may be lost: look again
		case <-timer:
			timer = nil
			now, err := p.resolve()
			if err != nil {
				p.log.WithError(err).Warn("--protect-binaries: resolve again")
				continue
			}
			added, err := p.ts.ProtectBinaries(now)
			if err != nil {
				p.log.WithError(err).Warn("--protect-binaries: protect what changed")
			}
			if len(added) > 0 {
				p.log.WithField("binaries", strings.Join(added, ",")).Info("protected from enforcement: binaries installed or re-linked since the start")
			}
			watch(now)
		}
	}
}

// protectRoots are the file systems protected binaries are resolved in: the
// agent's and the host's (through PID 1's root, for an agent in a
// container).
func protectRoots(procRoot string) []string {
	return []string{"", filepath.Join(procRoot, "1", "root")}
}
