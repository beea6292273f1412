package websum

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMarshalParse(t *testing.T) {
	r := Record{Sources: "sha256:ab", Assets: "sha256:cd", Esbuild: "0.28.2"}
	got, err := Parse(r.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "sources x\n", "sources a\nassets b\nesbuild c\nclang d\n", "sources\n"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Record{Sources: "sha256:ab", Assets: "sha256:cd", Esbuild: "0.28.2"}.Marshal())
	f.Add([]byte("# x\nsources a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			return
		}
		again, err := Parse(r.Marshal())
		if err != nil || again != r {
			t.Errorf("%+v does not survive Marshal and Parse: %+v %v", r, again, err)
		}
	})
}
