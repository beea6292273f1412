package tracingsensor

import (
	"errors"
	"fmt"
	"time"

	"github.com/vigilsec/vigil/kprobes/abi"
)

// quarantine is how long a freed hook id stays unused, so that records of an
// unloaded hook still in the ring buffer are not attributed to its successor.
const quarantine = 10 * time.Second

// allocator hands out hook ids, value-set ids, follow bits and policy ids.
// It is used under the sensor's lock.
type allocator struct {
	hooks    [abi.GenMaxHooks]int64 // 0: free; -1: in use; >0: free after this Unix nano time
	policies [abi.GenMaxPolicies]int64
	nextSet  uint32
	follow   uint64
	now      func() time.Time
}

func newAllocator() *allocator {
	a := &allocator{nextSet: 1, now: time.Now}
	// Id 0 is never handed out, so that a zeroed record is recognisable.
	a.hooks[0] = -1
	a.policies[0] = -1
	return a
}

func take(slots []int64, now int64) (uint32, bool) {
	for i, v := range slots {
		if v == 0 || (v > 0 && v <= now) {
			slots[i] = -1
			return uint32(i), true
		}
	}
	return 0, false
}

func (a *allocator) hookID() (uint32, error) {
	id, ok := take(a.hooks[:], a.now().UnixNano())
	if !ok {
		return 0, fmt.Errorf("all %d hook slots are in use: unload a policy first", abi.GenMaxHooks-1)
	}
	return id, nil
}

func (a *allocator) freeHook(id uint32) {
	if id != 0 && int(id) < len(a.hooks) {
		a.hooks[id] = a.now().Add(quarantine).UnixNano()
	}
}

func (a *allocator) policyID() (uint32, error) {
	id, ok := take(a.policies[:], a.now().UnixNano())
	if !ok {
		return 0, errors.New("too many policies loaded")
	}
	return id, nil
}

func (a *allocator) freePolicy(id uint32) {
	if id != 0 && int(id) < len(a.policies) {
		a.policies[id] = a.now().Add(quarantine).UnixNano()
	}
}

func (a *allocator) setID() uint32 {
	id := a.nextSet
	a.nextSet++
	if a.nextSet == 0 {
		a.nextSet = 1
	}
	return id
}

func (a *allocator) followBit() (uint8, error) {
	for b := uint8(0); b < 64; b++ {
		if a.follow&(1<<b) == 0 {
			a.follow |= 1 << b
			return b, nil
		}
	}
	return 0, errors.New("all 64 follow sets (followChildren, followForks) are in use")
}

func (a *allocator) freeFollowBit(b uint8) { a.follow &^= 1 << b }

// compileIDs adapts the allocator to tracingpolicies.IDs and remembers what
// it handed out, so a failed load can give everything back.
type compileIDs struct {
	a      *allocator
	hooks  []uint32
	follow []uint8
}

func (c *compileIDs) HookID() (uint32, error) {
	id, err := c.a.hookID()
	if err == nil {
		c.hooks = append(c.hooks, id)
	}
	return id, err
}

func (c *compileIDs) SetID() uint32 { return c.a.setID() }

func (c *compileIDs) FollowBit() (uint8, error) {
	b, err := c.a.followBit()
	if err == nil {
		c.follow = append(c.follow, b)
	}
	return b, err
}

func (c *compileIDs) release() {
	for _, id := range c.hooks {
		c.a.freeHook(id)
	}
	for _, b := range c.follow {
		c.a.freeFollowBit(b)
	}
}
