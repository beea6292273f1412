package agent

import (
	"strings"
	"testing"
)

func TestValidatePprofAddr(t *testing.T) {
	for _, tc := range []struct {
		addr, want string
	}{
		{"127.0.0.1:6060", ""},
		{"[::1]:6060", ""},
		{"localhost:6060", ""},
		{"0.0.0.0:6060", "--pprof-addr: \"0.0.0.0:6060\": profiles are served on a loopback address only"},
		{"10.0.0.1:6060", "loopback address only"},
		{":6060", "loopback address only"},
		{"6060", "is not host:port"},
	} {
		cfg := DefaultConfig()
		cfg.NodeName = "n"
		cfg.PprofAddr = tc.addr
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.addr, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.addr, err, tc.want)
		}
	}
}

func TestValidateProtectBinaries(t *testing.T) {
	for _, tc := range []struct {
		bins []string
		want string
	}{
		{nil, ""},
		{[]string{"containerd", "containerd-shim*", "/opt/runtime/bin/*"}, ""},
		{[]string{"bin/runc"}, `--protect-binaries: "bin/runc": give a program's name or its absolute path`},
		{[]string{"run[c"}, `--protect-binaries: "run[c": syntax error in pattern`},
	} {
		cfg := DefaultConfig()
		cfg.NodeName = "n"
		cfg.ProtectBinaries = tc.bins
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.bins, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("%q: error %v, want %q", tc.bins, err, tc.want)
		}
	}
}

func TestValidateExecEnv(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{nil, ""},
		{[]string{"LD_PRELOAD", "HTTP_PROXY"}, ""},
		{[]string{"LD_PRELOAD="}, `--exec-env: environment variable name "LD_PRELOAD=": must be non-empty, without '=' or NUL`},
		{[]string{"LD_PRELOAD", ""}, `--exec-env: environment variable name "": must be non-empty, without '=' or NUL`},
	} {
		cfg := DefaultConfig()
		cfg.NodeName = "n"
		cfg.ExecEnv = tc.names
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.names, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("%q: error %v, want %q", tc.names, err, tc.want)
		}
	}
	if got := DefaultConfig().ExecEnv; strings.Join(got, ",") != "LD_PRELOAD,LD_LIBRARY_PATH,LD_AUDIT,GLIBC_TUNABLES" {
		t.Errorf("default --exec-env %q", got)
	}
}

func TestValidateHTTPHeaders(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"User-Agent", "x-request-id"}, ""},
		{[]string{":authority"}, `--http-headers: ":authority" is not an HTTP header name (a token: letters, digits and !#$%&'*+-.^_` + "`" + `|~)`},
		{[]string{"Bad Name"}, `--http-headers: "Bad Name" is not an HTTP header name (a token: letters, digits and !#$%&'*+-.^_` + "`" + `|~)`},
	} {
		cfg := DefaultConfig()
		cfg.NodeName = "n"
		cfg.NetpolHTTP.Headers = tc.names
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.names, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("%q: error %v, want %q", tc.names, err, tc.want)
		}
	}
}

func TestValidateHTTPVisibility(t *testing.T) {
	c := DefaultConfig()
	c.NetpolHTTP.Visibility = []uint16{80}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "--http-visibility: needs the network policy datapath") {
		t.Fatalf("Validate: %v", err)
	}
	c.NetworkPolicies = []string{"p.yaml"}
	if err := c.Validate(); err != nil && strings.Contains(err.Error(), "--http-visibility") {
		t.Fatalf("Validate with a policy: %v", err)
	}
}
