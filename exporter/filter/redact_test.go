package filter

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	r, err := NewRedactor("--export-redact", []string{
		`(?:--password|-p)(?:\s+|=)(\S+)`,
		`(?i)token=(\w+)`,
		`(AKIA[0-9A-Z]{16})`,
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{"-h db --password=hunter2 -U app", "-h db --password=***** -U app"},
		{"--password hunter2 --password=x", "--password ***** --password=*****"},
		{"-p s3cret", "-p *****"},
		{"curl https://x/?TOKEN=abc123&x=1", "curl https://x/?TOKEN=*****&x=1"},
		{"aws AKIAABCDEFGHIJKLMNOP s3 ls", "aws ***** s3 ls"},
		{"nothing to see", "nothing to see"},
		{"", ""},
	}
	for _, tt := range tests {
		for i := 0; i < 2; i++ { // the second call is served from the cache
			if got := r.Redact(tt.in); got != tt.want {
				t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		}
	}
	var nilR *Redactor
	if got := nilR.Redact("--password=x"); got != "--password=x" {
		t.Errorf("nil Redactor changed its input: %q", got)
	}
}

func TestRedactorErrors(t *testing.T) {
	for _, tt := range []struct{ pattern, want string }{
		{`--password=\S+`, `--export-redact[0]: pattern "--password=\\S+" has no capture group`},
		{`(unclosed`, `--export-redact[0]: error parsing regexp`},
	} {
		_, err := NewRedactor("--export-redact", []string{tt.pattern})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewRedactor(%q) = %v, want %q", tt.pattern, err, tt.want)
		}
	}
}

func TestRequiredLiteral(t *testing.T) {
	for _, tt := range []struct{ pattern, want string }{
		{`(?:--password)(?:\s+|=)(\S+)`, "--password"},
		{`(?:--password|-p)(?:\s+|=)(\S+)`, "-"}, // the parser factors out the common "-"
		{`(?i)token=(\w+)`, ""},
		{`(AKIA[0-9A-Z]{16})`, "AKIA"},
		{`x+secret(\d)`, "secret"},
		{`(a|b)*`, ""},
	} {
		if got := requiredLiteral(tt.pattern); got != tt.want {
			t.Errorf("requiredLiteral(%q) = %q, want %q", tt.pattern, got, tt.want)
		}
	}
}

// FuzzRedact checks that the literal pre-check never changes the result and
// that no captured secret survives.
func FuzzRedact(f *testing.F) {
	f.Add("-h db --password=hunter2 -U app")
	f.Add("--passwordx=--password= --password")
	f.Add("AKIAABCDEFGHIJKLMNOPAKIAABCDEFGHIJKLMNOP")
	f.Add("ababab abababb xxy xy key=kkey=v")
	patterns := []string{`(?:--password)(?:\s+|=)(\S+)`, `(AKIA[0-9A-Z]{16})`, `k(e)(y)=(\w*)`, `ab(a*)|abab(b)`, `xx?(y)`}
	r, err := NewRedactor("fuzz", patterns)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := r.Redact(s)
		want := s
		for _, rule := range r.rules {
			plain := redactRule{re: rule.re} // no literal check, no anchored search
			want = plain.apply(want)
		}
		if got != want {
			t.Fatalf("Redact(%q) = %q, without the literal check %q", s, got, want)
		}
		if strings.Contains(s, "--password=hunter2 ") && strings.Contains(got, "hunter2") {
			t.Fatalf("secret survived: %q", got)
		}
	})
}
