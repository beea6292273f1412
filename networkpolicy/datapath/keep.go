package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/identity/cgroup"
	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/kprobes/abi"
)

// Under Config.LinkPinDir the datapath keeps what outlives it:
//
//	DIR/{connect4,connect6,sendmsg4,sendmsg6,ingress,egress}  the cgroup links
//	DIR/np_flows                                              the UDP exchanges
//
// A link holds its program and the program its maps (policies, identities,
// cgroups), so the links alone keep the last applied policies enforced.
// The links stay the same across hand-overs: a new datapath replaces their
// programs (bpf_link_update), so that at every moment each hook runs the
// old program or the new one, never both and never none. np_flows is
// shared by the old and the new programs, so replies of an exchange the
// old programs saw start are known to the new ones.
const pinFlows = "np_flows"

// hooks are the attached programs, by the name of their pinned link.
var hooks = []struct {
	name string
	at   ebpf.AttachType
}{
	{"connect4", ebpf.AttachCGroupInet4Connect},
	{"connect6", ebpf.AttachCGroupInet6Connect},
	{"sendmsg4", ebpf.AttachCGroupUDP4Sendmsg},
	{"sendmsg6", ebpf.AttachCGroupUDP6Sendmsg},
	{"ingress", ebpf.AttachCGroupInetIngress},
	{"egress", ebpf.AttachCGroupInetEgress},
}

func (d *Datapath) hookPrograms() []*ebpf.Program {
	return []*ebpf.Program{d.objs.NpConnect4, d.objs.NpConnect6, d.objs.NpSendmsg4, d.objs.NpSendmsg6, d.objs.NpIngress, d.objs.NpEgress}
}

// Adoption is what a datapath took over from the programs that an earlier
// one left attached under Config.LinkPinDir.
type Adoption struct {
	// Links counts the pinned links whose program this datapath replaced;
	// Attached the hooks that had none and were attached afresh.
	Links, Attached int
	// Programs are the ids of the programs replaced.
	Programs []ebpf.ProgramID
	// Allowed, Denied and Audited are what the replaced programs decided
	// since they were loaded (by the earlier owner and after it ended).
	Allowed, Denied, Audited uint64
	// RecordsUnread counts the verdict records of the replaced programs
	// that no one read: those written after their owner ended.
	RecordsUnread uint64
	// FlowsCarried tells whether the UDP exchanges the replaced programs
	// knew were carried over (their pinned np_flows fits these programs).
	FlowsCarried bool
	// Unpinned tells whether the pins were removed (KeepOnClose off):
	// the programs detach when the datapath closes.
	Unpinned bool
}

// cgroupID returns the id of the cgroup directory root.
var cgroupID = cgroup.ID

// openKept finds what an earlier datapath left under LinkPinDir: the links
// of the hooks (nil where there is none) and the flows map (nil when there
// is none, or it no longer fits the programs of spec). A link attached to
// another cgroup than root is refused: it would keep enforcing there.
func (d *Datapath) openKept(root string, spec *ebpf.CollectionSpec) (links []link.Link, flows *ebpf.Map, err error) {
	dir := d.cfg.LinkPinDir
	links = make([]link.Link, len(hooks))
	defer func() {
		if err != nil {
			for _, l := range links {
				if l != nil {
					l.Close()
				}
			}
			links = nil
		}
	}()
	rootID, err := cgroupID(root)
	if err != nil {
		return nil, nil, fmt.Errorf("datapath: %w", err)
	}
	for i, h := range hooks {
		path := filepath.Join(dir, h.name)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			continue
		}
		l, err := link.LoadPinnedLink(path, nil)
		if err != nil {
			return links, nil, fmt.Errorf("datapath: pinned link %s: %w", path, err)
		}
		links[i] = l
		info, err := l.Info()
		if err != nil {
			return links, nil, fmt.Errorf("datapath: pinned link %s: %w", path, err)
		}
		cg := info.Cgroup()
		if cg == nil {
			return links, nil, fmt.Errorf("datapath: pinned link %s is not a cgroup link (remove it with `vigil agent --cleanup-pins`)", path)
		}
		if cg.CgroupId != rootID {
			return links, nil, fmt.Errorf("datapath: pinned link %s is attached to cgroup %d, not to %s (%d): remove it with `vigil agent --cleanup-pins`", path, cg.CgroupId, root, rootID)
		}
	}
	fpath := filepath.Join(dir, pinFlows)
	m, err := ebpf.LoadPinnedMap(fpath, nil)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		d.log.WithError(err).WithField("path", fpath).Warn("pinned UDP exchanges unreadable; replies to exchanges started before are decided afresh")
	default:
		fspec := spec.Maps[abi.NetpolMapNpFlows].Copy()
		fspec.Pinning = ebpf.PinNone
		if err := fspec.Compatible(m); err != nil {
			m.Close()
			d.log.WithError(err).WithField("path", fpath).Warn("pinned UDP exchanges do not fit these programs; replies to exchanges started before are decided afresh")
		} else {
			flows = m
		}
	}
	return links, flows, nil
}

// attachLocked attaches the programs to root, and pins the links when the
// datapath keeps them. On failure, what it attached or pinned is removed.
func (d *Datapath) attachLocked(root string) (err error) {
	progs := d.hookPrograms()
	d.links = make([]link.Link, len(hooks))
	for i, h := range hooks {
		if err := d.attachHook(root, i, progs[i]); err != nil {
			return fmt.Errorf("datapath: attach %s at %s: %w", h.at, root, err)
		}
	}
	switch {
	case d.cfg.KeepOnClose:
		return d.pinFlowsLocked()
	case d.cfg.LinkPinDir != "":
		// No link to adopt: a flows map pinned there is stale.
		return d.unpinLocked()
	}
	return nil
}

func (d *Datapath) attachHook(root string, i int, prog *ebpf.Program) error {
	l, err := link.AttachCgroup(link.CgroupOptions{Path: root, Attach: hooks[i].at, Program: prog})
	if err != nil {
		return err
	}
	d.links[i] = l
	if d.cfg.KeepOnClose {
		if err := kprobes.PinLink(l, filepath.Join(d.cfg.LinkPinDir, hooks[i].name)); err != nil {
			return err
		}
	}
	return nil
}

// pinFlowsLocked pins this datapath's np_flows, unless it is the pinned
// one already.
func (d *Datapath) pinFlowsLocked() error {
	if d.flowsCarried {
		return nil
	}
	path := filepath.Join(d.cfg.LinkPinDir, pinFlows)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("datapath: remove stale pin: %w", err)
	}
	return kprobes.PinMap(d.objs.NpFlows, path)
}

// unpinLocked removes the pins of the links and of np_flows (and the pin
// directory when nothing else is in it): the programs detach once the
// datapath closes.
func (d *Datapath) unpinLocked() error {
	var errs []error
	for _, l := range d.links {
		if l != nil {
			if err := l.Unpin(); err != nil && !errors.Is(err, link.ErrNotSupported) {
				errs = append(errs, err)
			}
		}
	}
	if d.cfg.LinkPinDir != "" {
		if err := os.Remove(filepath.Join(d.cfg.LinkPinDir, pinFlows)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		os.Remove(d.cfg.LinkPinDir)
	}
	return errors.Join(errs...)
}

// takeOverLocked puts this datapath's programs in place of the adopted
// ones, hook by hook with bpf_link_update, once its maps hold the applied
// policies: each hook runs the old program up to the update and the new
// one from it. Hooks with no pinned link are attached. A hook that fails
// keeps what it ran, and the next Apply tries again.
func (d *Datapath) takeOverLocked() error {
	progs := d.hookPrograms()
	ad := d.adoption
	if ad == nil {
		ad = &Adoption{FlowsCarried: d.flowsCarried}
		d.adoption = ad
	}
	var old []*ebpf.Program
	defer func() {
		for _, p := range old {
			p.Close()
		}
	}()
	for i, h := range hooks {
		if d.links[i] != nil {
			continue
		}
		l := d.adopt[i]
		if l == nil {
			if err := d.attachHook(d.root, i, progs[i]); err != nil {
				return fmt.Errorf("datapath: attach %s at %s: %w", h.at, d.root, err)
			}
			ad.Attached++
			continue
		}
		info, err := l.Info()
		if err != nil {
			return fmt.Errorf("datapath: pinned link %s: %w", h.name, err)
		}
		// Held open, so that its maps can still be read once it is
		// replaced.
		if p, err := ebpf.NewProgramFromID(info.Program); err == nil {
			old = append(old, p)
		}
		if err := l.Update(progs[i]); err != nil {
			return fmt.Errorf("datapath: replace the program of pinned link %s: %w", h.name, err)
		}
		d.links[i], d.adopt[i] = l, nil
		ad.Links++
		ad.Programs = append(ad.Programs, info.Program)
	}
	d.adopting = false
	oldCounters(old, ad)
	if d.cfg.KeepOnClose {
		if err := d.pinFlowsLocked(); err != nil {
			return err
		}
	}
	if !d.cfg.KeepOnClose {
		if err := d.unpinLocked(); err != nil {
			return fmt.Errorf("datapath: remove the pins of %s: %w", d.cfg.LinkPinDir, err)
		}
		ad.Unpinned = true
	}
	d.log.WithFields(logrus.Fields{
		"links_adopted": ad.Links, "hooks_attached": ad.Attached, "programs_replaced": ad.Programs,
		"old_allowed": ad.Allowed, "old_denied": ad.Denied, "old_audited": ad.Audited,
		"records_unread": ad.RecordsUnread, "udp_exchanges_carried": ad.FlowsCarried, "pins_removed": ad.Unpinned,
	}).Info("network policy enforcement taken over from the pinned programs of an earlier run")
	return nil
}

// oldCounters reads what the replaced programs counted and wrote: their
// np_stats and the records left in their np_records (shared by all of
// them, so each map is read once).
func oldCounters(progs []*ebpf.Program, ad *Adoption) {
	seen := map[ebpf.MapID]bool{}
	for _, p := range progs {
		info, err := p.Info()
		if err != nil {
			continue
		}
		ids, _ := info.MapIDs()
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			m, err := ebpf.NewMapFromID(id)
			if err != nil {
				continue
			}
			mi, err := m.Info()
			if err == nil {
				switch mi.Name {
				case abi.NetpolMapNpStats:
					if st, err := statsOf(m); err == nil {
						ad.Allowed += st.Allowed
						ad.Denied += st.Denied
						ad.Audited += st.Audited
					}
				case abi.NetpolMapNpRecords:
					ad.RecordsUnread += countRecords(m)
				}
			}
			m.Close()
		}
	}
}

// countRecords reads what is left in a ring buffer no one reads any more.
func countRecords(m *ebpf.Map) uint64 {
	r, err := ringbuf.NewReader(m)
	if err != nil {
		return 0
	}
	defer r.Close()
	r.SetDeadline(time.Now())
	var n uint64
	var rec ringbuf.Record
	for limit := uint64(m.MaxEntries()) / 8; n < limit; n++ {
		if err := r.ReadInto(&rec); err != nil {
			break
		}
	}
	return n
}

// Adopting tells whether the programs of an earlier datapath still enforce
// (from pins under LinkPinDir) until an Apply succeeds and replaces them.
func (d *Datapath) Adopting() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.adopting
}

// Adopted returns what the datapath took over from an earlier one, nil
// when it took over nothing (yet).
func (d *Datapath) Adopted() *Adoption {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.adopting || d.adoption == nil {
		return nil
	}
	a := *d.adoption
	return &a
}

// RemoveKept removes what a datapath kept in dir (Config.LinkPinDir) and
// waits until the programs are detached: the policies they enforced are no
// longer enforced. It returns how many pins it removed; a dir that does
// not exist holds none. Only the datapath's own pins are removed.
func RemoveKept(dir string) (int, error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	attached, err := kprobes.PinnedLinks(dir)
	if err != nil {
		return 0, fmt.Errorf("remove kept network policy programs: %w", err)
	}
	n := 0
	var errs []error
	for _, name := range append(hookNames(), pinFlows) {
		err := os.Remove(filepath.Join(dir, name))
		switch {
		case err == nil:
			n++
		case !errors.Is(err, os.ErrNotExist):
			errs = append(errs, err)
		}
	}
	if err := kprobes.WaitDetached(attached, 10*time.Second); err != nil {
		errs = append(errs, err)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("%s holds more than Vigil's pins: %w", dir, err))
	}
	if len(errs) > 0 {
		return n, fmt.Errorf("remove kept network policy programs: %w", errors.Join(errs...))
	}
	return n, nil
}

func hookNames() []string {
	out := make([]string, len(hooks))
	for i, h := range hooks {
		out[i] = h.name
	}
	return out
}

// unpinOwnLocked removes the pins this datapath made (a Load that failed
// part way), leaving those of an earlier one.
func (d *Datapath) unpinOwnLocked() error {
	var errs []error
	for _, l := range d.links {
		if l != nil {
			if err := l.Unpin(); err != nil && !errors.Is(err, link.ErrNotSupported) {
				errs = append(errs, err)
			}
		}
	}
	if d.objs.NpFlows != nil && d.objs.NpFlows.IsPinned() {
		errs = append(errs, d.objs.NpFlows.Unpin())
	}
	return errors.Join(errs...)
}
