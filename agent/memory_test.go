package agent

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadResident(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status")
	status := "Name:\tvigil\nVmRSS:\t   75000 kB\nRssAnon:\t   24000 kB\nRssFile:\t   50000 kB\nRssShmem:\t    1000 kB\n"
	if err := os.WriteFile(path, []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := readResident(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := (residentMemory{Anon: 24000 << 10, File: 51000 << 10}); m != want {
		t.Errorf("readResident = %+v, want %+v", m, want)
	}
	if err := os.WriteFile(path, []byte("RssAnon:\tlots kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readResident(path); err == nil || !strings.Contains(err.Error(), "RssAnon") {
		t.Errorf("a bad RssAnon: %v, want an error naming it", err)
	}
}

// mappingRss is the resident memory of this process's mappings of path,
// from /proc/self/smaps.
func mappingRss(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rss, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-"):
			in = len(fields) >= 6 && fields[5] == path
		case len(fields) == 3 && fields[0] == "Rss:" && in:
			kb, err := strconv.Atoi(fields[1])
			if err != nil {
				t.Fatal(err)
			}
			rss += kb
		}
	}
	return rss
}

// The read-only pages of a mapped file leave the process's resident
// memory when paged out, as the binary's do once the agent is ready.
func TestPageOutMappings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "code")
	const size = 64 << 12
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	sum := 0
	for i := 0; i < size; i += 4096 {
		sum += int(b[i])
	}
	before := mappingRss(t, path)
	if before < size>>10 {
		t.Fatalf("%d KiB of the mapping resident after reading every page, want %d", before, size>>10)
	}
	if err := pageOutMappings("/proc/self/maps", path); err != nil {
		t.Fatal(err)
	}
	if after := mappingRss(t, path); after >= before/2 {
		t.Errorf("%d KiB of the mapping resident after paging out (%d before), want it mostly gone", after, before)
	}
	if sum != 0 {
		t.Errorf("the file read back as %d, want zeroes", sum)
	}
}
