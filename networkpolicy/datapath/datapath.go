package datapath

import (
	"github.com/vigilsec/vigil/identity/cgroup"
	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/kprobes/abi"

	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/networkpolicy"
)

// Defaults of Config.
const (
	DefaultRecordsPerSecond = 1000
	DefaultMaxPolicyEntries = 16384
)

// Pod is a workload the agent found on the node: the pod (name, namespace,
// labels, addresses, named ports) and the cgroups of its containers. A
// socket is policed as the pod's when it was created in one of these
// cgroups exactly (not a descendant).
type Pod struct {
	networkpolicy.Pod
	CgroupIDs []uint64
}

// WorkloadSource lists the pods of this node. The agent provides it; tests
// provide network namespaces and cgroups they created.
type WorkloadSource interface {
	Pods(ctx context.Context) ([]Pod, error)
}

// Config configures the datapath.
type Config struct {
	// Workloads lists the pods to police (required).
	Workloads WorkloadSource
	// CgroupRoot is the cgroup v2 directory the programs attach to; empty
	// means the root of the cgroup2 mount found in /proc/self/mountinfo.
	CgroupRoot string
	// HostIPs are the node's addresses (the host entity).
	HostIPs []netip.Addr
	// RecordsPerSecond limits verdict records per CPU (0: the default;
	// negative: unlimited). Suppressed records are counted.
	RecordsPerSecond int
	// MaxPolicyEntries bounds the policy map of one local identity (0: the
	// default).
	MaxPolicyEntries int
	// DNSMinTTL is the least time an address of a DNS answer stays
	// allowed for toFQDNs rules, whatever the answer's TTL (0: the
	// default; it must be at least a second).
	DNSMinTTL time.Duration
	// DNSMaxIPs is the most addresses one DNS answer records (0: the
	// default; negative: no limit).
	DNSMaxIPs int
	// MaxFQDNEntries bounds the learned (local identity, address) pairs
	// (0: the default).
	MaxFQDNEntries int
	// PinDir, when set, keeps the learned addresses in maps pinned there
	// (DefaultPinDir for the agent): a new datapath adopts them and
	// carries them over to its identity numbers at its first Apply, and
	// Close leaves them.
	PinDir string
	// LinkPinDir is a directory on a BPF file system where the links of
	// the programs are pinned with KeepOnClose, and where an earlier
	// datapath may have left them: then Load attaches nothing, and the
	// programs found there keep enforcing until the first Apply that
	// succeeds replaces them with this datapath's (see Adopted). Empty:
	// nothing is kept or adopted.
	LinkPinDir string
	// KeepOnClose keeps the programs attached, with the policies last
	// applied, after Close or the end of the process (LinkPinDir is
	// required). Off, what is adopted is unpinned once replaced, and
	// Close detaches everything.
	KeepOnClose bool
	// HTTPVisibility are TCP ports whose connections from pods go through
	// the HTTP proxy for visibility (flows of each request), whether or
	// not rules.http governs them.
	HTTPVisibility []uint16
}

// Validate names the field that is wrong.
func (c *Config) Validate() error {
	if c.Workloads == nil {
		return errors.New("datapath config: Workloads is required")
	}
	if c.DNSMinTTL < 0 || (c.DNSMinTTL > 0 && c.DNSMinTTL < time.Second) {
		return fmt.Errorf("datapath config: DNSMinTTL %s must be at least 1s", c.DNSMinTTL)
	}
	if c.MaxFQDNEntries < 0 {
		return fmt.Errorf("datapath config: MaxFQDNEntries %d is negative", c.MaxFQDNEntries)
	}
	if c.MaxPolicyEntries < 0 {
		return fmt.Errorf("datapath config: MaxPolicyEntries %d is negative", c.MaxPolicyEntries)
	}
	if c.KeepOnClose && c.LinkPinDir == "" {
		return errors.New("datapath config: KeepOnClose needs LinkPinDir")
	}
	if c.LinkPinDir != "" && !filepath.IsAbs(c.LinkPinDir) {
		return fmt.Errorf("datapath config: LinkPinDir %q is not an absolute path", c.LinkPinDir)
	}
	if c.CgroupRoot != "" {
		if fi, err := os.Stat(c.CgroupRoot); err != nil || !fi.IsDir() {
			return fmt.Errorf("datapath config: CgroupRoot %q is not a directory", c.CgroupRoot)
		}
	}
	return nil
}

// Datapath is the loaded kernel side of network policy.
type Datapath struct {
	cfg   Config
	log   logrus.FieldLogger
	alloc *networkpolicy.Allocator

	mu     sync.Mutex
	objs   abi.NetpolObjects
	inner  *ebpf.MapSpec
	links  []link.Link
	loaded bool
	comp   *networkpolicy.Compiler
	engine *networkpolicy.Engine
	// What the kernel holds: the policy map entries of each local identity
	// by remote identity, the maps, the ipcache and the cgroups.
	policy  map[uint32]map[uint32]networkpolicy.Group
	inners  map[uint32]*ebpf.Map
	ipcache map[netip.Prefix]uint32
	cgroups map[uint64]uint32
	// resync: an apply failed part way; the next one compares everything.
	resync bool
	// retired are the rules of policies gone, which records in flight may
	// still name.
	retired map[uint32]networkpolicy.RuleRef
	// podIPs are the addresses of the pod owning each cgroup, to name the
	// local address of records made before the socket had one.
	podIPs map[uint64][]netip.Addr
	// names is the name table in the automaton maps; namesHalf the half
	// the programs use, namesStates the states written in each half.
	names       *networkpolicy.NameTable
	namesHalf   int
	namesStates [2]int
	// legend is the pinned legend of identity numbers (nil without
	// PinDir); adopted: the learned addresses come from an earlier run and
	// wait for reconcileLearned.
	legend        *ebpf.Map
	adopted       bool
	legendRead    bool
	legendWritten map[uint32]string
	// root is the cgroup the programs attach to. adopt are the pinned
	// links of an earlier datapath (by hook; nil where there is none)
	// whose programs enforce while adopting, until takeOverLocked;
	// adoption is what was taken over. flowsCarried: np_flows is the
	// pinned one, shared with the adopted programs.
	root         string
	adopt        []link.Link
	adopting     bool
	adoption     *Adoption
	flowsCarried bool
	// l7 are the np_l7_redirect entries in the kernel.
	l7 map[abi.NetpolNpL7Key]uint32
}

// New validates the configuration; Load then loads and attaches.
func New(cfg Config, log logrus.FieldLogger) (*Datapath, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxPolicyEntries == 0 {
		cfg.MaxPolicyEntries = DefaultMaxPolicyEntries
	}
	if cfg.RecordsPerSecond == 0 {
		cfg.RecordsPerSecond = DefaultRecordsPerSecond
	}
	if cfg.DNSMinTTL == 0 {
		cfg.DNSMinTTL = DefaultDNSMinTTL
	}
	if cfg.DNSMaxIPs == 0 {
		cfg.DNSMaxIPs = DefaultDNSMaxIPs
	}
	if cfg.MaxFQDNEntries == 0 {
		cfg.MaxFQDNEntries = DefaultMaxFQDNEntries
	}
	if log == nil {
		l := logrus.New()
		l.SetOutput(os.Stderr)
		log = l
	}
	alloc := networkpolicy.NewAllocator()
	return &Datapath{
		cfg: cfg, log: log.WithField("component", "netpol-datapath"), alloc: alloc, comp: networkpolicy.NewCompiler(alloc),
		policy:  map[uint32]map[uint32]networkpolicy.Group{},
		inners:  map[uint32]*ebpf.Map{},
		ipcache: map[netip.Prefix]uint32{},
		cgroups: map[uint64]uint32{},
		retired: map[uint32]networkpolicy.RuleRef{},
		podIPs:  map[uint64][]netip.Addr{},
		l7:      map[abi.NetpolNpL7Key]uint32{},
	}, nil
}

// Load loads the BPF objects and attaches the programs at the cgroup root.
// On failure everything created is removed again.
func (d *Datapath) Load() (err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.loaded {
		return errors.New("datapath: already loaded")
	}
	root := d.cfg.CgroupRoot
	if root == "" {
		if root, err = cgroup.Mountpoint(); err != nil {
			return fmt.Errorf("datapath: %w", err)
		}
	}
	spec, err := abi.LoadNetpol()
	if err != nil {
		return fmt.Errorf("datapath: load BPF spec: %w", err)
	}
	outer := spec.Maps[abi.NetpolMapNpPolicy]
	outer.InnerMap.MaxEntries = uint32(d.cfg.MaxPolicyEntries)
	d.inner = outer.InnerMap.Copy()
	spec.Maps[abi.NetpolMapNpFqdn].MaxEntries = uint32(d.cfg.MaxFQDNEntries)
	rate := abi.NetpolNpConfig{DnsMinTtl: uint32(d.cfg.DNSMinTTL / time.Second)}
	if d.cfg.DNSMaxIPs > 0 {
		rate.DnsMaxIps = uint32(d.cfg.DNSMaxIPs)
	}
	if d.cfg.RecordsPerSecond > 0 {
		rate.RecordsPerSec = uint32(d.cfg.RecordsPerSecond)
		rate.Burst = uint32(d.cfg.RecordsPerSecond)
	}
	if err := spec.Variables[abi.NetpolVarNpCfg].Set(rate); err != nil {
		return fmt.Errorf("datapath: set config: %w", err)
	}
	opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{}, Cache: kprobes.KernelTypes()}
	if d.cfg.PinDir != "" {
		fqdn, legend, adopted, err := openPinned(d.cfg.PinDir, spec)
		if err != nil {
			return err
		}
		defer fqdn.Close() // the collection holds its own reference
		d.legend, d.adopted, d.legendWritten = legend, adopted, map[uint32]string{}
		opts.MapReplacements[abi.NetpolMapNpFqdn] = fqdn
	}
	defer func() {
		if err != nil {
			d.closeLocked()
		}
	}()
	if d.cfg.LinkPinDir != "" {
		links, flows, err := d.openKept(root, spec)
		if err != nil {
			return err
		}
		d.adopt = links
		for _, l := range links {
			d.adopting = d.adopting || l != nil
		}
		if flows != nil {
			defer flows.Close()
			if d.adopting || d.cfg.KeepOnClose {
				opts.MapReplacements[abi.NetpolMapNpFlows] = flows
				d.flowsCarried = true
			}
		}
	}
	if err := spec.LoadAndAssign(&d.objs, opts); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("datapath: load BPF objects: %w (verifier log: %+v)", err, ve)
		}
		return fmt.Errorf("datapath: load BPF objects: %w (MEMLOCK may be too low, consider rlimit.RemoveMemlock)", err)
	}
	d.root = root
	if d.adopting {
		// The programs of the pinned links enforce the policies they were
		// given until the first Apply has filled this datapath's maps.
		d.links = make([]link.Link, len(hooks))
		d.log.WithFields(logrus.Fields{"cgroup": root, "dir": d.cfg.LinkPinDir}).Info("network policy programs of an earlier run enforce until the first apply")
	} else {
		if err := d.attachLocked(root); err != nil {
			return err
		}
		d.log.WithFields(logrus.Fields{"cgroup": root, "kept_on_exit": d.cfg.KeepOnClose}).Info("network policy datapath attached")
	}
	d.loaded = true
	return nil
}

// Close detaches the programs and removes every map.
func (d *Datapath) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closeLocked()
}

func (d *Datapath) closeLocked() error {
	var errs []error
	if !d.loaded {
		// Half a start enforces nothing once the datapath is gone; the
		// adopted links stay pinned (their programs keep enforcing).
		errs = append(errs, d.unpinOwnLocked())
	}
	for _, l := range d.links {
		if l != nil {
			errs = append(errs, l.Close())
		}
	}
	d.links = nil
	for _, l := range d.adopt {
		if l != nil {
			errs = append(errs, l.Close())
		}
	}
	d.adopt, d.adopting = nil, false
	for id, m := range d.inners {
		errs = append(errs, m.Close())
		delete(d.inners, id)
	}
	errs = append(errs, d.objs.Close())
	d.objs = abi.NetpolObjects{}
	if d.legend != nil {
		errs = append(errs, d.legend.Close())
		d.legend = nil
	}
	d.loaded = false
	d.l7 = map[abi.NetpolNpL7Key]uint32{}
	return errors.Join(errs...)
}

// ObjectIDs returns the kernel ids of the loaded programs and maps (inner
// policy maps included), for diagnostics and leak checks.
func (d *Datapath) ObjectIDs() ([]ebpf.ProgramID, []ebpf.MapID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var progs []ebpf.ProgramID
	for _, p := range []*ebpf.Program{d.objs.NpConnect4, d.objs.NpConnect6, d.objs.NpSendmsg4, d.objs.NpSendmsg6, d.objs.NpIngress, d.objs.NpEgress, d.objs.NpDnsTest} {
		if p == nil {
			continue
		}
		if info, err := p.Info(); err == nil {
			if id, ok := info.ID(); ok {
				progs = append(progs, id)
			}
		}
	}
	var maps []ebpf.MapID
	all := []*ebpf.Map{d.objs.NpCgroups, d.objs.NpFlows, d.objs.NpIpcache, d.objs.NpPolicy, d.objs.NpRatelimit, d.objs.NpRecords, d.objs.NpStats,
		d.objs.NpDnsNext, d.objs.NpDnsAccept, d.objs.NpDnsGroups, d.objs.NpDnsActive, d.objs.NpFqdn, d.objs.NpDnsScratch, d.objs.NpDnsTcpLen,
		d.objs.NpL7Redirect, d.objs.NpL7Conns, d.objs.NpL7Cfg, d.objs.NpL7Stats}
	for _, m := range d.inners {
		all = append(all, m)
	}
	for _, m := range all {
		if m == nil {
			continue
		}
		if info, err := m.Info(); err == nil {
			if id, ok := info.ID(); ok {
				maps = append(maps, id)
			}
		}
	}
	return progs, maps
}

// Engine returns the engine of the last Apply.
func (d *Datapath) Engine() *networkpolicy.Engine {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.engine
}

// PolicyKey converts an engine key into the kernel's byte layout.
func PolicyKey(k networkpolicy.PolicyKey) abi.NetpolPolicyKey {
	return abi.NetpolPolicyKey{
		Prefixlen: k.PrefixLen,
		Remote:    hton32(k.Remote),
		Direction: uint8(k.Direction),
		Protocol:  uint8(k.Protocol),
		Port:      hton16(k.Port),
	}
}

func hton32(v uint32) uint32 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return binary.NativeEndian.Uint32(b[:])
}

func hton16(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// ipcacheKey stores IPv4 prefixes IPv4-mapped, over 128 bits.
func ipcacheKey(p netip.Prefix) abi.NetpolIpcacheKey {
	a := p.Addr()
	bits := p.Bits()
	if a.Is4() {
		bits += 96
	}
	return abi.NetpolIpcacheKey{Prefixlen: uint32(bits), Addr: a.As16()}
}

// Stats are the datapath's counters, summed over CPUs.
type Stats struct {
	Allowed, Denied, Audited                uint64
	Records, RecordsSuppressed, RecordsLost uint64
	// DNS answers to pods' queries for toFQDNs: parsed, addresses
	// learned, refused as malformed, longer than the parser reads
	// (learned from their first 4096 bytes), addresses not learned for a
	// full map, names of an address that replaced another, addresses
	// beyond DNSMaxIPs of an answer; flows allowed by a learned name.
	DNSAnswers, DNSLearned, DNSMalformed, DNSTruncated uint64
	DNSMapFull, DNSSlotEvicted, DNSCapped, FQDNAllowed uint64
	// DNS queries checked against rules.dns, and those refused (dropped);
	// answers over TCP not learned because a segment did not hold all of
	// one.
	DNSQueries, DNSRefused, DNSSplit uint64
}

// Stats reads the counters.
func (d *Datapath) Stats() (Stats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.loaded {
		return Stats{}, errors.New("datapath: not loaded")
	}
	return statsOf(d.objs.NpStats)
}

// statsOf sums the counters of an np_stats map over CPUs.
func statsOf(m *ebpf.Map) (Stats, error) {
	var st Stats
	out := []*uint64{&st.Allowed, &st.Denied, &st.Audited, &st.Records, &st.RecordsSuppressed, &st.RecordsLost,
		&st.DNSAnswers, &st.DNSLearned, &st.DNSMalformed, &st.DNSTruncated, &st.DNSMapFull, &st.DNSSlotEvicted, &st.DNSCapped, &st.FQDNAllowed,
		&st.DNSQueries, &st.DNSRefused, &st.DNSSplit}
	for i, p := range out {
		var per []uint64
		if err := m.Lookup(uint32(i), &per); err != nil {
			return st, fmt.Errorf("datapath: read stats: %w", err)
		}
		for _, v := range per {
			*p += v
		}
	}
	return st, nil
}
