package networkpolicy

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/internal/manifest"
)

// TestParserRemembersDocuments checks that a Parser gives what Parse gives,
// the same *Policy for a document it parsed before, and a new one for a
// document that changed, so that the compiler sees only the change.
func TestParserRemembersDocuments(t *testing.T) {
	split := func(src string) []*manifest.Document {
		docs, err := manifest.Split("p.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return docs
	}
	r := rand.New(rand.NewPCG(3, 4))
	first, second := split(randomManifests(r)), split(randomManifests(r))
	p := NewParser()
	for _, docs := range [][]*manifest.Document{first, first, second, first} {
		got, gotErr := p.Parse(docs)
		want, wantErr := Parse(docs)
		if diff := cmp.Diff(errString(wantErr), errString(gotErr)); diff != "" {
			t.Fatalf("errors differ from Parse's:\n%s", diff)
		}
		if diff := cmp.Diff(policyNames(want.Policies), policyNames(got.Policies)); diff != "" {
			t.Fatalf("policies differ from Parse's:\n%s", diff)
		}
		if len(got.Pods) != len(want.Pods) || len(got.Namespaces) != len(want.Namespaces) {
			t.Fatalf("%d pods and %d namespaces, Parse gives %d and %d", len(got.Pods), len(got.Namespaces), len(want.Pods), len(want.Namespaces))
		}
	}
	a, _ := p.Parse(first)
	b, _ := p.Parse(first)
	for i := range a.Policies {
		if a.Policies[i] != b.Policies[i] {
			t.Errorf("policy %s parsed again from the same document", a.Policies[i])
		}
	}
	// One document edited: only its policy is new.
	edited := append([]*manifest.Document(nil), first...)
	at := -1
	for i, d := range edited {
		if strings.HasSuffix(d.Kind, "Policy") {
			at = i
		}
	}
	if at < 0 {
		t.Fatal("the random manifests hold no policy")
	}
	again := split(string(first[at].Raw()))
	again[0].File, again[0].Line = first[at].File, first[at].Line
	edited[at] = again[0]
	c, _ := p.Parse(edited)
	same := 0
	for i := range c.Policies {
		if c.Policies[i] == b.Policies[i] {
			same++
		}
	}
	if len(b.Policies) > 0 && same != len(b.Policies)-1 {
		t.Errorf("after one document changed, %d of %d policies are the ones parsed before, want all but one", same, len(b.Policies))
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func policyNames(pols []*Policy) []string {
	var out []string
	for _, p := range pols {
		out = append(out, p.String())
	}
	return out
}
