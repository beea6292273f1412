package exporter

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string // substrings of the error; nil for no error
	}{
		{"defaults", func(c *Config) {}, nil},
		{"all sinks", func(c *Config) {
			c.File = "/var/log/vigil/events.log"
			c.Webhook = "https://splunk.example.com:8088/services/collector/raw"
			c.WebhookHeaders = []string{"Authorization: Splunk 123", "X-Tenant:  a"}
			c.Syslog = "tls://logs.example.com:6514"
			c.SyslogCAFile = "/etc/ssl/ca.pem"
		}, nil},
		{"no sink", func(c *Config) { c.Stdout = false }, []string{"--export-stdout=false and no --export-file"}},
		{"bad webhook URL", func(c *Config) { c.Webhook = "splunk.example.com:8088" }, []string{"--export-webhook:"}},
		{"webhook scheme", func(c *Config) { c.Webhook = "ftp://x/" }, []string{`--export-webhook: "ftp://x/": want an http:// or https:// URL`}},
		{"webhook no host", func(c *Config) { c.Webhook = "http:///path" }, []string{"--export-webhook: \"http:///path\" has no host"}},
		{"bad header", func(c *Config) {
			c.Webhook = "http://x"
			c.WebhookHeaders = []string{"Authorization Splunk 123", "Bad Name: x", "X: a\nb"}
		}, []string{"--export-webhook-header: [0]", "--export-webhook-header: [1]", "--export-webhook-header: [2]"}},
		{"header without webhook", func(c *Config) { c.WebhookHeaders = []string{"A: b"} }, []string{"--export-webhook-header: needs --export-webhook"}},
		{"webhook batch", func(c *Config) { c.Webhook = "http://x"; c.WebhookBatchMaxBytes = 10 }, []string{"--export-webhook-batch-max-bytes: 10"}},
		{"syslog scheme", func(c *Config) { c.Syslog = "syslog.example.com:514" }, []string{"--export-syslog:"}},
		{"syslog port", func(c *Config) { c.Syslog = "udp://syslog.example.com" }, []string{"--export-syslog: address \"syslog.example.com\""}},
		{"syslog facility", func(c *Config) { c.Syslog = "udp://h:514"; c.SyslogFacility = "local9" }, []string{`--export-syslog-facility: unknown facility "local9"`}},
		{"syslog tls options on udp", func(c *Config) { c.Syslog = "udp://h:514"; c.SyslogCAFile = "/ca" }, []string{"TLS options are set"}},
		{"file size", func(c *Config) { c.File = "/x"; c.FileMaxSizeMB = 0 }, []string{"--export-file-max-size-mb: 0"}},
		{"file perm", func(c *Config) { c.File = "/x"; c.FilePerm = 0o444 }, []string{"--export-file-perm: 0444: the owner must be able to write"}},
		{"rotation", func(c *Config) { c.File = "/x"; c.FileRotationInterval = Duration(time.Millisecond) }, []string{"--export-file-rotation-interval: 1ms"}},
		{"allowlist regex", func(c *Config) { c.Allowlist = `{"binary_regex":["(bad"]}` }, []string{"--export-allowlist: line 1: binary_regex[0]: error parsing regexp"}},
		{"denylist key", func(c *Config) { c.Denylist = "{\"namespace\":[\"a\"]}\n{\"podregex\":[\"x\"]}" }, []string{"--export-denylist: line 2: podregex: unknown filter key"}},
		{"redact", func(c *Config) { c.Redact = []string{`(ok)`, `no-group`} }, []string{"--export-redact[1]: pattern \"no-group\" has no capture group"}},
		{"field path", func(c *Config) { c.FieldExclude = []string{"proc.arguments"} }, []string{`--export-field-exclude[0]: unknown member "proc"`}},
		{"rate limit", func(c *Config) { c.RateLimit = -5 }, []string{"--export-rate-limit: -5"}},
		{"queue", func(c *Config) { c.QueueMB = 0 }, []string{"--export-queue-mb: 0"}},
		{"several at once", func(c *Config) { c.QueueMB = 0; c.RateLimit = -2 }, []string{"--export-queue-mb", "--export-rate-limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate succeeded, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestNewRefusesUnusablePaths(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	os.WriteFile(notDir, nil, 0o600)
	tests := []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"file in missing dir", func(c *Config) { c.File = filepath.Join(dir, "missing", "events.log") }, "file sink: open "},
		{"file is a directory", func(c *Config) { c.File = dir }, "file sink: open "},
		{"spool under a file", func(c *Config) {
			c.Webhook = "http://127.0.0.1:1/"
			c.WebhookSpoolDir = filepath.Join(notDir, "spool")
		}, "webhook sink: spool: mkdir " + notDir},
		{"missing CA", func(c *Config) {
			c.Webhook = "https://127.0.0.1:1/"
			c.WebhookSpoolDir = ""
			c.WebhookCAFile = filepath.Join(dir, "nope.pem")
		}, "webhook TLS: bad TLS files: CA file"},
		{"CA without PEM", func(c *Config) {
			c.Syslog = "tls://127.0.0.1:6514"
			c.SyslogCAFile = notDir
		}, "syslog TLS: bad TLS files: CA file " + notDir + " holds no PEM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Stdout = false
			tt.change(&c)
			_, err := New(c, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestFlagNames checks that every flag has a Config field whose json name
// (the config file key) is the flag name, and the other way round.
func TestFlagNames(t *testing.T) {
	var c Config
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	c.AddFlags(fs)
	var flags []string
	fs.VisitAll(func(f *pflag.Flag) { flags = append(flags, f.Name) })
	var keys []string
	rt := reflect.TypeOf(c)
	for i := 0; i < rt.NumField(); i++ {
		if k := rt.Field(i).Tag.Get("json"); k != "-" {
			keys = append(keys, k)
		}
	}
	sort.Strings(flags)
	sort.Strings(keys)
	if diff := cmp.Diff(keys, flags); diff != "" {
		t.Errorf("flags vs config keys (-keys +flags):\n%s", diff)
	}
	if diff := cmp.Diff(DefaultConfig(), c); diff != "" {
		t.Errorf("AddFlags defaults differ from DefaultConfig (-want +got):\n%s", diff)
	}
}

func TestFlagsParse(t *testing.T) {
	var c Config
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	c.AddFlags(fs)
	err := fs.Parse([]string{
		"--export-stdout=false", "--export-file", "/var/log/vigil.json", "--export-file-perm", "0640",
		"--export-file-rotation-interval", "1h", "--export-webhook", "https://x/",
		"--export-webhook-header", "Authorization: Splunk a,b", "--export-webhook-header", "X-A: 1",
		"--export-redact", `(?:--password)(?:\s+|=)(\S+)`, "--export-field-exclude", "process.arguments,parent",
		"--export-rate-limit", "600", "--export-arguments-array",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Stdout = false
	want.File, want.FilePerm, want.FileRotationInterval = "/var/log/vigil.json", 0o640, Duration(time.Hour)
	want.Webhook = "https://x/"
	want.WebhookHeaders = []string{"Authorization: Splunk a,b", "X-A: 1"}
	want.Redact = []string{`(?:--password)(?:\s+|=)(\S+)`}
	want.FieldExclude = []string{"process.arguments", "parent"}
	want.RateLimit = 600
	want.ArgumentsArray = true
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	for _, bad := range [][]string{
		{"--export-file-perm", "rw-r--r--"},
		{"--export-file-perm", "01777"},
		{"--export-webhook-timeout", "ten seconds"},
	} {
		fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
		fs.SetOutput(discard{})
		(&Config{}).AddFlags(fs)
		if err := fs.Parse(bad); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("Parse(%q) = %v, want an error naming the flag", bad, err)
		}
	}
}

func TestYAMLKeys(t *testing.T) {
	doc := `
export-stdout: false
export-file: /var/log/vigil/events.json
export-file-perm: 0640
export-file-rotation-interval: 24h
export-webhook: https://siem.example.com/ingest
export-webhook-header:
  - "Authorization: Bearer abc"
export-allowlist: |
  {"namespace":["shop"]}
  {"event_set":["PROCESS_LSM"]}
export-rate-limit: 1200
`
	c := DefaultConfig()
	if err := yaml.UnmarshalStrict([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if c.Stdout || c.File != "/var/log/vigil/events.json" || c.FilePerm != 0o640 ||
		c.FileRotationInterval != Duration(24*time.Hour) || c.RateLimit != 1200 || len(c.WebhookHeaders) != 1 {
		t.Errorf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	var bad Config
	err := yaml.UnmarshalStrict([]byte("export-file-perm: 600\n"), &bad)
	if err == nil || !strings.Contains(err.Error(), "quoted octal string") {
		t.Errorf("decimal 600 accepted as a mode: %v", err)
	}
	if err := yaml.UnmarshalStrict([]byte("export-fil: /x\n"), &bad); err == nil {
		t.Error("misspelled key accepted by strict decoding")
	}
}
