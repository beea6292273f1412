package networkpolicy_test

import (
	"testing"

	"github.com/vigilsec/vigil/networkpolicy"
)

// TestExamples loads the example manifests and checks the connectivity
// their comments promise.
func TestExamples(t *testing.T) {
	res, err := networkpolicy.Load("../examples/networkpolicy")
	if err != nil {
		t.Fatal(err)
	}
	e, err := networkpolicy.Compile(res, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		from, to, port string
		want           networkpolicy.Verdict
	}{
		{"203.0.113.7", "shop/web", "8080/TCP", networkpolicy.Allow},
		{"203.0.113.7", "shop/web", "9000/TCP", networkpolicy.Deny},
		{"shop/web", "shop/api", "9000/TCP", networkpolicy.Allow},
		{"shop/web", "shop/db", "5432/TCP", networkpolicy.Deny},
		{"shop/api", "shop/db", "5432/TCP", networkpolicy.Allow},
		{"ops/node-agent", "shop/api", "9000/TCP", networkpolicy.Allow},
		{"ops/node-agent", "shop/db", "5432/TCP", networkpolicy.Deny},
		{"shop/db", "203.0.113.7", "443/TCP", networkpolicy.Deny},
		{"ops/node-agent", "203.0.113.7", "443/TCP", networkpolicy.Audit},
		{"ops/node-agent", "198.18.0.1", "443/TCP", networkpolicy.Audit}, // not excepted from the deny rule, yet outside the cluster
		{"ops/node-agent", "shop/web", "8080/TCP", networkpolicy.Allow},
	}
	for _, tt := range tests {
		from, err := e.ParseEndpoint(tt.from)
		if err != nil {
			t.Fatal(err)
		}
		to, err := e.ParseEndpoint(tt.to)
		if err != nil {
			t.Fatal(err)
		}
		port, proto, err := networkpolicy.ParsePort(tt.port)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Check(from, to, proto, port); got.Verdict != tt.want {
			t.Errorf("%s -> %s %s: got %s, want %s\n%s", tt.from, tt.to, tt.port, got.Verdict, tt.want, got.Explain())
		}
	}
}
