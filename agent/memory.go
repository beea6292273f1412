package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// residentMemory is a process's resident memory in bytes, as the kernel
// accounts it (/proc/PID/status): anonymous (heap, stacks) and pages of
// mapped files (the binary, the BPF ring buffer).
type residentMemory struct {
	Anon, File uint64
}

func (m residentMemory) String() string {
	return fmt.Sprintf("%d MiB (%d anonymous, %d file)", (m.Anon+m.File)>>20, m.Anon>>20, m.File>>20)
}

// readResident reads the resident memory of the process whose status file
// is path.
func readResident(path string) (residentMemory, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return residentMemory{}, err
	}
	var m residentMemory
	for line := range bytes.Lines(b) {
		name, val, ok := strings.Cut(string(line), ":")
		if !ok {
			continue
		}
		var dst *uint64
		switch name {
		case "RssAnon":
			dst = &m.Anon
		case "RssFile", "RssShmem":
			dst = &m.File
		default:
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return residentMemory{}, fmt.Errorf("%s: %s: %w", path, name, err)
		}
		*dst += kb << 10
	}
	return m, nil
}

// releaseStartupMemory gives back, once the agent is ready, what starting
// took and running does not use: the heap's garbage of start-up (kernel
// BTF decoded for each program load, policies parsed and compiled, /proc
// read) and the pages of the agent's binary that start-up brought in (code
// and tables of parsers, compilers, clients and the kernel's fault-around
// of 64 KiB per page touched). The kernel brings a page back when it is
// used again; until then it is not part of the agent's resident memory. It
// returns the resident memory before and after.
func releaseStartupMemory() (before, after residentMemory, err error) {
	const status = "/proc/self/status"
	if before, err = readResident(status); err != nil {
		return before, before, err
	}
	debug.FreeOSMemory()
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err == nil {
		err = pageOutMappings("/proc/self/maps", exe)
	}
	after, rerr := readResident(status)
	if err == nil {
		err = rerr
	}
	return before, after, err
}

// pageOutMappings asks the kernel to reclaim the read-only mappings of the
// file path (code, read-only data) in the process whose maps file is given.
// Pages other processes map stay where they are.
func pageOutMappings(maps, path string) error {
	f, err := os.Open(maps)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != path || strings.Contains(fields[1], "w") {
			continue
		}
		start, end, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		lo, err1 := strconv.ParseUint(start, 16, 64)
		hi, err2 := strconv.ParseUint(end, 16, 64)
		if err1 != nil || err2 != nil || hi <= lo {
			return fmt.Errorf("%s: mapping %q", maps, fields[0])
		}
		if err := madvise(uintptr(lo), uintptr(hi-lo), unix.MADV_PAGEOUT); err != nil {
			return fmt.Errorf("madvise(MADV_PAGEOUT) %s: %w", fields[0], err)
		}
	}
	return sc.Err()
}

// madvise is madvise(2) on a range the Go runtime does not own (the
// binary's own mappings), which unix.Madvise cannot name.
func madvise(addr, length uintptr, advice int) error {
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, addr, length, uintptr(advice)); e != 0 {
		return e
	}
	return nil
}
