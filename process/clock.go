package process

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Clock converts kernel timestamps (CLOCK_MONOTONIC nanoseconds, as
// bpf_ktime_get_ns returns them) to wall time and to the boot-anchored
// nanoseconds exec ids are made of.
type Clock struct {
	// WallOffset is added to a kernel time to get Unix nanoseconds.
	WallOffset int64
	// BootTime is the boot time in Unix nanoseconds, at second precision
	// (/proc/stat btime), stable for the life of a boot.
	BootTime int64
}

// HostClock measures the offsets of this host.
func HostClock() (Clock, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return Clock{}, fmt.Errorf("read monotonic clock: %w", err)
	}
	now := time.Now().UnixNano()
	btime, err := readBtime("/proc/stat")
	if err != nil {
		return Clock{}, err
	}
	return Clock{WallOffset: now - ts.Nano(), BootTime: btime * int64(time.Second)}, nil
}

func readBtime(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read boot time: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("btime ")); ok {
			return strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	return 0, fmt.Errorf("read boot time: no btime in %s", path)
}

// Wall returns the wall time of a kernel timestamp.
func (c Clock) Wall(ktime uint64) time.Time {
	return time.Unix(0, int64(ktime)+c.WallOffset).UTC()
}

// IDTime returns the time component of exec ids for a kernel timestamp.
func (c Clock) IDTime(ktime uint64) uint64 {
	return uint64(c.BootTime) + ktime
}
