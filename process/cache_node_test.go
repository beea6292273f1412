package process

import (
	"os"
	"path/filepath"
	"testing"
)

// The cache is sized from the kernel's threads-max, within bounds.
func TestNodeMaxEntries(t *testing.T) {
	for _, tc := range []struct {
		threads string
		want    int
	}{
		{"196608\n", 49152},  // 24 GiB
		{"15000\n", 4096},    // a small node: the floor
		{"2000000\n", 65536}, // a large one: the ceiling
		{"garbage\n", DefaultMaxEntries},
		{"", DefaultMaxEntries}, // no file
	} {
		root := t.TempDir()
		if tc.threads != "" {
			os.MkdirAll(filepath.Join(root, "sys/kernel"), 0o755)
			os.WriteFile(filepath.Join(root, "sys/kernel/threads-max"), []byte(tc.threads), 0o644)
		}
		if got := NodeMaxEntries(root); got != tc.want {
			t.Errorf("threads-max %q: %d entries, want %d", tc.threads, got, tc.want)
		}
	}
	c, err := NewCache(Config{NodeName: "n", MaxEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Capacity != 100 {
		t.Errorf("Stats().Capacity = %d, want 100", s.Capacity)
	}
}
