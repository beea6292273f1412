package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
	"github.com/vigilsec/vigil/process"
)

// Under the pin directory (--bpf-pin-dir), each agent run that keeps its
// enforcement has a generation directory; the map naming the generation
// whose tracing-policy programs act is shared by them all:
//
//	DIR/active                  gen_active: the generation that acts
//	DIR/gen-N/process/{exec,fork,exit,protected_tgids,events,ring_reader}
//	DIR/gen-N/policies/ID-NAME/hookH-L
//	DIR/netpol/...              the network-policy datapath's links
//	                            (datapath.Config.LinkPinDir)
//
// Nothing else is ever created or removed there.
const (
	pinActive    = "active"
	pinGenPrefix = "gen-"
	pinProcess   = "process"
	pinPolicies  = "policies"
)

// handover is this run's place among the agent runs whose programs enforce.
// A run loads programs of its own (a new generation) while those of an
// earlier run that kept its enforcement still act, and then takes over in
// one write of gen_active: at every moment the programs of exactly one
// generation act, so there is neither a gap nor a double action.
type handover struct {
	dir  string
	keep bool
	gen  uint32
	// earlier are the generation directories of earlier runs, pinned.
	earlier []string
	active  *ebpf.Map
	log     logrus.FieldLogger
	took    bool
}

// openHandover reads the pin directory: the earlier generations still
// pinned and the shared gen_active map (created, and pinned when keep, if
// there is none). With no earlier generation, this one acts at once.
func openHandover(dir string, keep bool, log logrus.FieldLogger) (_ *handover, err error) {
	h := &handover{dir: dir, keep: keep, log: log}
	if keep {
		mounted, err := kprobes.EnsurePinDir(dir)
		if err != nil {
			return nil, fmt.Errorf("--keep-enforcement-on-exit: %w", err)
		}
		if mounted != "" {
			log.WithField("path", mounted).Info("mounted a BPF file system for the pinned programs")
		}
	}
	var last uint32
	h.earlier, last, err = generations(dir)
	if err != nil {
		return nil, err
	}
	activePath := filepath.Join(dir, pinActive)
	if len(h.earlier) > 0 {
		h.active, err = ebpf.LoadPinnedMap(activePath, nil)
		if err != nil {
			// The earlier programs' map is gone: they act on their own
			// value, which no write can reach any more; a fresh map lets
			// this run act, and the earlier ones are removed at take-over.
			log.WithError(err).Warn("the pinned map of the active generation is unreadable; the earlier programs are replaced without a hand-over")
			h.active = nil
		}
	}
	if h.active == nil {
		h.active, err = ebpf.NewMap(&ebpf.MapSpec{Name: abi.GenericMapGenActive, Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
		if err != nil {
			return nil, fmt.Errorf("create the active-generation map: %w", err)
		}
		os.Remove(activePath)
	}
	defer func() {
		if err != nil {
			h.active.Close()
		}
	}()
	var cur uint32
	if err := h.active.Lookup(uint32(0), &cur); err != nil {
		return nil, fmt.Errorf("read the active generation: %w", err)
	}
	h.gen = max(last, cur) + 1
	if keep && !h.active.IsPinned() {
		if err := kprobes.PinMap(h.active, activePath); err != nil {
			return nil, fmt.Errorf("--keep-enforcement-on-exit: %w", err)
		}
	}
	if len(h.earlier) == 0 {
		if err := h.activate(); err != nil {
			return nil, err
		}
		return h, nil
	}
	// The earlier programs act until the take-over: they must not act on
	// this agent, which they do not know.
	for _, g := range h.earlier {
		if err := protectIn(filepath.Join(g, pinProcess, abi.ProcessMapProtectedTgids), uint32(os.Getpid())); err != nil {
			log.WithError(err).WithField("generation", filepath.Base(g)).Warn("cannot protect the agent from the programs it takes over")
		}
	}
	log.WithFields(logrus.Fields{"earlier": len(h.earlier), "dir": dir}).Info("pinned programs of an earlier run enforce until this run's policies are loaded")
	return h, nil
}

// generations lists the generation directories under dir, oldest first,
// and the newest generation number.
func generations(dir string) ([]string, uint32, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read pinned programs: %w", err)
	}
	type gen struct {
		n    uint32
		path string
	}
	var gens []gen
	for _, e := range entries {
		s, ok := strings.CutPrefix(e.Name(), pinGenPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			continue
		}
		gens = append(gens, gen{uint32(n), filepath.Join(dir, e.Name())})
	}
	sort.Slice(gens, func(i, j int) bool { return gens[i].n < gens[j].n })
	var out []string
	var last uint32
	for _, g := range gens {
		out = append(out, g.path)
		last = g.n
	}
	return out, last, nil
}

// protectIn adds pid to a pinned table of protected processes.
func protectIn(path string, pid uint32) error {
	m, err := ebpf.LoadPinnedMap(path, nil)
	if err != nil {
		return err
	}
	defer m.Close()
	var why uint32
	m.Lookup(pid, &why)
	return m.Put(pid, why|uint32(abi.ProcessProtectReasonPROTECT_AGENT))
}

// genDir is this run's generation directory ("" when it keeps nothing).
func (h *handover) genDir() string {
	if !h.keep {
		return ""
	}
	return filepath.Join(h.dir, fmt.Sprintf("%s%d", pinGenPrefix, h.gen))
}

func (h *handover) processPins() string {
	if !h.keep {
		return ""
	}
	return filepath.Join(h.genDir(), pinProcess)
}

func (h *handover) policyPins() string {
	if !h.keep {
		return ""
	}
	return filepath.Join(h.genDir(), pinPolicies)
}

func (h *handover) activate() error {
	if err := h.active.Put(uint32(0), h.gen); err != nil {
		return fmt.Errorf("make generation %d active: %w", h.gen, err)
	}
	h.took = true
	return nil
}

// takeOver makes this run's programs the ones that act and removes the
// earlier generations, whose programs then detach: policies that this run
// did not load are no longer enforced. Without keep, the pins are all
// removed, so that nothing enforces that no agent shows.
func (h *handover) takeOver(lost func(uint64)) error {
	if h.took && len(h.earlier) == 0 {
		return nil
	}
	if err := h.activate(); err != nil {
		return err
	}
	removed := 0
	var unreadTotal uint64
	var detached []kprobes.Attached
	for _, g := range h.earlier {
		if n := unread(g); n > 0 {
			unreadTotal += n
			if lost != nil {
				lost(n)
			}
		}
		n, _ := kprobes.CountPins(g)
		links, _ := kprobes.PinnedLinks(g)
		if err := os.RemoveAll(g); err != nil {
			h.log.WithError(err).WithField("generation", filepath.Base(g)).Warn("remove the pins of an earlier run")
			continue
		}
		removed += n
		detached = append(detached, links...)
	}
	// The kernel detaches them shortly after (see WaitDetached); they no
	// longer act since the write above.
	if err := kprobes.WaitDetached(detached, 10*time.Second); err != nil {
		h.log.WithError(err).Warn("the programs of an earlier run are not detached yet")
	}
	fields := logrus.Fields{"generation": h.gen, "pins_removed": removed, "records_unread": unreadTotal}
	if !h.keep {
		os.Remove(filepath.Join(h.dir, pinActive))
		os.Remove(h.dir)
		h.log.WithFields(fields).Warn("removed the programs an earlier run pinned with --keep-enforcement-on-exit; this run does not keep its enforcement when it exits")
	} else {
		h.log.WithFields(fields).Info("took over enforcement from the pinned programs of an earlier run")
	}
	h.earlier = nil
	return nil
}

// abandon removes this run's pins when it stops before it took over or
// before it was ready: half a start must not enforce with no agent.
func (h *handover) abandon() {
	if d := h.genDir(); d != "" {
		os.RemoveAll(d)
	}
}

func (h *handover) close() {
	if h.keep && h.took {
		h.log.WithField("dir", h.genDir()).Info("enforcement stays in the kernel after exit (--keep-enforcement-on-exit); `vigil agent --cleanup-pins` removes it")
	}
	h.active.Close()
}

// unread counts the records an earlier generation's programs wrote while
// no agent read them: those still in its ring buffer and those it could not
// write because the ring was full.
func unread(genDir string) uint64 {
	var n uint64
	if m, err := ebpf.LoadPinnedMap(filepath.Join(genDir, pinProcess, abi.ProcessMapRingReader), nil); err == nil {
		var st abi.ReaderState
		if m.Lookup(uint32(0), &st) == nil {
			for _, l := range st.Lost {
				n += l
			}
		}
		m.Close()
	}
	if m, err := ebpf.LoadPinnedMap(filepath.Join(genDir, pinProcess, abi.ProcessMapEvents), nil); err == nil {
		c, _ := process.CountRecords(m)
		n += c
		m.Close()
	}
	return n
}

// CleanupPins removes every program and map an agent pinned under dir with
// --keep-enforcement-on-exit: the programs detach and their policies stop
// being enforced. Stop the agent first. Only what the agent creates there is
// removed, and only on a BPF file system. It returns how many pins it
// removed, once the kernel has detached the programs.
func CleanupPins(dir string) (int, error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	ok, err := kprobes.OnBPFFS(dir)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("%s is not on a BPF file system: nothing of Vigil's is pinned there", dir)
	}
	gens, _, err := generations(dir)
	if err != nil {
		return 0, err
	}
	total := 0
	var errs []error
	var detached []kprobes.Attached
	for _, g := range gens {
		n, _ := kprobes.CountPins(g)
		links, _ := kprobes.PinnedLinks(g)
		if err := os.RemoveAll(g); err != nil {
			errs = append(errs, err)
			continue
		}
		total += n
		detached = append(detached, links...)
	}
	if err := kprobes.WaitDetached(detached, 10*time.Second); err != nil {
		errs = append(errs, err)
	}
	if n, err := datapath.RemoveKept(netpolPinDir(dir)); err != nil {
		errs = append(errs, err)
	} else {
		total += n
	}
	if err := os.Remove(filepath.Join(dir, pinActive)); err == nil {
		total++
	} else if !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("%s holds more than Vigil's pins: %w", dir, err))
		}
	}
	return total, errors.Join(errs...)
}
