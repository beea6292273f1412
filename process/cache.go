package process

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigilsec/vigil/event"
)

// Defaults of Config.
const (
	DefaultMaxEntries = 65536
	DefaultExitGrace  = 30 * time.Second
)

// Bounds of NodeMaxEntries.
const (
	minNodeEntries = 4096
	maxNodeEntries = DefaultMaxEntries
)

// NodeMaxEntries is the process cache size for this node: a quarter of the
// kernel's threads-max (which the kernel derives from the node's memory:
// one thread per 128 KiB), so one entry per 512 KiB of memory, between 4096
// and 65536. Without /proc/sys/kernel/threads-max it is DefaultMaxEntries.
func NodeMaxEntries(procRoot string) int {
	b, err := os.ReadFile(filepath.Join(procRoot, "sys/kernel/threads-max"))
	if err != nil {
		return DefaultMaxEntries
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return DefaultMaxEntries
	}
	return min(max(n/4, minNodeEntries), maxNodeEntries)
}

// PodResolver maps a cgroup id to the pod (or standalone workload) its
// processes belong to. It must be cheap: it runs for every new process.
type PodResolver interface {
	PodForCgroup(cgroupID uint64) *event.Pod
}

// Config configures a Cache.
type Config struct {
	// NodeName is part of every exec id.
	NodeName string
	// MaxEntries bounds the number of processes kept (live and exited).
	MaxEntries int
	// ExitGrace is how long an exited process stays resolvable.
	ExitGrace time.Duration
	// Clock converts kernel times to wall time. Zero means the host clock.
	Clock Clock
	// Pods, when set, attaches pod identity to new processes.
	Pods PodResolver
	// HostNS are the host's namespaces, to mark a process's namespaces as
	// the host's.
	HostNS event.Namespaces
	// ExecEnv are the names of the environment variables kept from exec
	// records (the sensor reads the environment when
	// SensorOptions.ExecEnv is set).
	ExecEnv []string
}

// Validate checks the configuration and names the offending option.
func (c *Config) Validate() error {
	if c.MaxEntries < 0 {
		return fmt.Errorf("process cache size %d: must be positive", c.MaxEntries)
	}
	if c.MaxEntries > 0 && c.MaxEntries < 64 {
		return fmt.Errorf("process cache size %d: must be at least 64", c.MaxEntries)
	}
	if c.ExitGrace < 0 {
		return fmt.Errorf("exit grace %v: must not be negative", c.ExitGrace)
	}
	if err := ValidateEnvNames(c.ExecEnv); err != nil {
		return err
	}
	return nil
}

// Stats are the cache's counters.
type Stats struct {
	Size      int
	Capacity  int
	Hits      uint64
	Misses    uint64
	Evictions uint64
}

// Cache is the process tree. It is safe for concurrent use.
type Cache struct {
	mu         sync.Mutex
	cfg        Config
	byPID      map[uint32]*entry
	exited     fifo
	stats      Stats
	scratch    []byte
	envScratch []envMatch
}

// NewCache returns an empty cache.
func NewCache(cfg Config) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.ExitGrace == 0 {
		cfg.ExitGrace = DefaultExitGrace
	}
	if cfg.Clock == (Clock{}) {
		clk, err := HostClock()
		if err != nil {
			return nil, err
		}
		cfg.Clock = clk
	}
	return &Cache{
		cfg:   cfg,
		byPID: make(map[uint32]*entry, min(cfg.MaxEntries, 4096)),
	}, nil
}

// Clock returns the clock the cache converts kernel times with.
func (c *Cache) Clock() Clock { return c.cfg.Clock }

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Size = len(c.byPID)
	s.Capacity = c.cfg.MaxEntries
	return s
}

// Get returns the current process with the given pid and its parent, or nil
// when the pid is unknown.
func (c *Cache) Get(pid uint32) (proc, parent *event.Process) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.byPID[pid]
	if e == nil {
		c.stats.Misses++
		return nil, nil
	}
	c.stats.Hits++
	return &e.proc, e.parentProc()
}

func (e *entry) parentProc() *event.Process {
	if e.parent == nil {
		return nil
	}
	return &e.parent.proc
}

// insert makes e the current entry of its pid, making room when the cache
// is full. Callers hold mu.
func (c *Cache) insert(e *entry, now int64) {
	c.expire(now)
	pid := e.proc.PID
	if _, ok := c.byPID[pid]; !ok && len(c.byPID) >= c.cfg.MaxEntries {
		c.evictOne()
	}
	c.byPID[pid] = e
}

// expire drops exited entries older than the grace period.
func (c *Cache) expire(now int64) {
	grace := int64(c.cfg.ExitGrace)
	for {
		e, ok := c.exited.peek()
		if !ok || now-e.exitedAt < grace {
			return
		}
		c.exited.pop()
		c.drop(e)
	}
}

// drop removes e from the index if it is still the current entry of its pid.
func (c *Cache) drop(e *entry) {
	if c.byPID[e.proc.PID] == e {
		delete(c.byPID, e.proc.PID)
	}
	e.queued = false
	// Break ancestor chains so that evicted entries can be collected.
	e.parent = nil
}

// evictOne removes the oldest exited entry, or an arbitrary live one when
// none has exited.
func (c *Cache) evictOne() {
	c.stats.Evictions++
	for {
		e, ok := c.exited.pop()
		if !ok {
			break
		}
		if c.byPID[e.proc.PID] == e {
			c.drop(e)
			return
		}
	}
	for pid, e := range c.byPID {
		delete(c.byPID, pid)
		e.parent = nil
		return
	}
}

// fifo is a growable ring of exited entries in exit order.
type fifo struct {
	buf        []*entry
	head, size int
}

func (f *fifo) push(e *entry) {
	if f.size == len(f.buf) {
		n := max(64, 2*len(f.buf))
		nb := make([]*entry, n)
		for i := 0; i < f.size; i++ {
			nb[i] = f.buf[(f.head+i)%len(f.buf)]
		}
		f.buf, f.head = nb, 0
	}
	f.buf[(f.head+f.size)%len(f.buf)] = e
	f.size++
}

func (f *fifo) peek() (*entry, bool) {
	if f.size == 0 {
		return nil, false
	}
	return f.buf[f.head], true
}

func (f *fifo) pop() (*entry, bool) {
	if f.size == 0 {
		return nil, false
	}
	e := f.buf[f.head]
	f.buf[f.head] = nil
	f.head = (f.head + 1) % len(f.buf)
	f.size--
	return e, true
}

// SetPod attaches pod (nil: none) to every cached process of a cgroup whose
// pod differs, for the metadata that arrives after its processes started.
// Entries are replaced, never changed: published values stay immutable. It
// returns how many processes changed.
func (c *Cache) SetPod(cgroupID uint64, pod *event.Pod) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	replaced := map[*entry]*entry{}
	for pid, e := range c.byPID {
		if e.proc.CgroupID != cgroupID || e.proc.Pod == pod {
			continue
		}
		n := &entry{proc: e.proc, parent: e.parent, exitedAt: e.exitedAt, exitStatus: e.exitStatus, setuid: e.setuid, setgid: e.setgid}
		n.proc.Pod = pod
		if e.proc.BinaryProperties.Setuid != nil {
			n.proc.BinaryProperties.Setuid = &n.setuid
		}
		if e.proc.BinaryProperties.Setgid != nil {
			n.proc.BinaryProperties.Setgid = &n.setgid
		}
		if e.queued {
			// The exited queue keeps the old entry; it still expires it,
			// and drop() compares by pointer, so hand the slot over.
			n.queued = false
			n.exitedAt = e.exitedAt
		}
		c.byPID[pid] = n
		replaced[e] = n
	}
	if len(replaced) == 0 {
		return 0
	}
	for _, e := range c.byPID {
		if n, ok := replaced[e.parent]; ok {
			e.parent = n
		}
	}
	for old, n := range replaced {
		if old.queued && n.exitedAt != 0 {
			n.queued = true
			c.exited.push(n)
		}
	}
	return len(replaced)
}
