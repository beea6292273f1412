package exporter

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/vigilsec/vigil/exporter/encode"
	"github.com/vigilsec/vigil/exporter/filter"
	"github.com/vigilsec/vigil/exporter/sink"
	"github.com/vigilsec/vigil/exporter/spool"
)

// Config is every option of the exporter. The json names are the flag
// names, which are also the keys of the agent's YAML config file.
type Config struct {
	// NodeName goes into every event; the agent sets it (default: the
	// host name).
	NodeName string `json:"-"`

	Stdout bool `json:"export-stdout"`

	File                 string   `json:"export-file"`
	FileMaxSizeMB        int      `json:"export-file-max-size-mb"`
	FileMaxBackups       int      `json:"export-file-max-backups"`
	FileRotationInterval Duration `json:"export-file-rotation-interval"`
	FileCompress         bool     `json:"export-file-compress"`
	FilePerm             FileMode `json:"export-file-perm"`

	Webhook                   string   `json:"export-webhook"`
	WebhookHeaders            []string `json:"export-webhook-header"`
	WebhookGzip               bool     `json:"export-webhook-gzip"`
	WebhookBatchMaxBytes      int      `json:"export-webhook-batch-max-bytes"`
	WebhookBatchInterval      Duration `json:"export-webhook-batch-interval"`
	WebhookTimeout            Duration `json:"export-webhook-timeout"`
	WebhookRetryMaxInterval   Duration `json:"export-webhook-retry-max-interval"`
	WebhookCAFile             string   `json:"export-webhook-ca-file"`
	WebhookCertFile           string   `json:"export-webhook-cert-file"`
	WebhookKeyFile            string   `json:"export-webhook-key-file"`
	WebhookInsecureSkipVerify bool     `json:"export-webhook-insecure-skip-verify"`
	WebhookSpoolDir           string   `json:"export-webhook-spool-dir"`
	WebhookSpoolMaxMB         int      `json:"export-webhook-spool-max-mb"`
	WebhookMemoryMB           int      `json:"export-webhook-memory-mb"`

	Syslog                   string `json:"export-syslog"`
	SyslogFacility           string `json:"export-syslog-facility"`
	SyslogCAFile             string `json:"export-syslog-ca-file"`
	SyslogCertFile           string `json:"export-syslog-cert-file"`
	SyslogKeyFile            string `json:"export-syslog-key-file"`
	SyslogInsecureSkipVerify bool   `json:"export-syslog-insecure-skip-verify"`

	// QueueMB bounds each sink's queue of encoded lines.
	QueueMB int `json:"export-queue-mb"`

	Allowlist    string   `json:"export-allowlist"`
	Denylist     string   `json:"export-denylist"`
	FieldInclude []string `json:"export-field-include"`
	FieldExclude []string `json:"export-field-exclude"`
	Redact       []string `json:"export-redact"`
	// ArgumentsArray adds process.arguments_list, the arguments as an
	// array, next to Tetragon's process.arguments string.
	ArgumentsArray bool `json:"export-arguments-array"`
	// Format is the shape of the lines: "vigil" (Tetragon's names plus
	// Vigil's own members) or "tetragon" (only what Tetragon's schema
	// has; see docs/export.md).
	Format string `json:"export-format"`
	// RateLimit is events per minute; 0 or -1 disables the limit.
	RateLimit int `json:"export-rate-limit"`

	// LostEventsInterval is how often lost_events and rate_limit_info
	// records report new losses.
	LostEventsInterval Duration `json:"export-lost-events-interval"`
	// FlushTimeout bounds the delivery of queued events at shutdown.
	FlushTimeout Duration `json:"export-flush-timeout"`
}

// DefaultConfig returns the defaults: JSON lines on stdout, nothing else.
func DefaultConfig() Config {
	return Config{
		Stdout:                  true,
		FileMaxSizeMB:           100,
		FileMaxBackups:          5,
		FilePerm:                0o600,
		WebhookGzip:             true,
		WebhookBatchMaxBytes:    1 << 20,
		WebhookBatchInterval:    Duration(time.Second),
		WebhookTimeout:          Duration(10 * time.Second),
		WebhookRetryMaxInterval: Duration(30 * time.Second),
		WebhookSpoolDir:         "/var/lib/vigil/webhook-spool",
		WebhookSpoolMaxMB:       1024,
		WebhookMemoryMB:         16,
		SyslogFacility:          "daemon",
		QueueMB:                 8,
		Format:                  encode.FormatNameVigil,
		LostEventsInterval:      Duration(10 * time.Second),
		FlushTimeout:            Duration(5 * time.Second),
	}
}

// AddFlags registers the exporter's flags on fs, bound to c, with the
// defaults of DefaultConfig (it sets every field of c to its default).
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.BoolVar(&c.Stdout, "export-stdout", d.Stdout, "write events to stdout as JSON lines")

	fs.StringVar(&c.File, "export-file", d.File, "also write events to this file, rotated by size and time")
	fs.IntVar(&c.FileMaxSizeMB, "export-file-max-size-mb", d.FileMaxSizeMB, "rotate the export file before it grows past this many MiB")
	fs.IntVar(&c.FileMaxBackups, "export-file-max-backups", d.FileMaxBackups, "rotated export files to keep (0 keeps all)")
	c.FileRotationInterval = d.FileRotationInterval
	fs.Var(&c.FileRotationInterval, "export-file-rotation-interval", "also rotate the export file this often, e.g. 1h (0: by size only)")
	fs.BoolVar(&c.FileCompress, "export-file-compress", d.FileCompress, "gzip rotated export files")
	c.FilePerm = d.FilePerm
	fs.Var(&c.FilePerm, "export-file-perm", "mode of the export file and its backups, in octal")

	fs.StringVar(&c.Webhook, "export-webhook", d.Webhook, "also POST events as NDJSON batches to this http(s) URL")
	fs.StringArrayVar(&c.WebhookHeaders, "export-webhook-header", d.WebhookHeaders, "'Name: value' header sent with every webhook request (repeatable)")
	fs.BoolVar(&c.WebhookGzip, "export-webhook-gzip", d.WebhookGzip, "gzip webhook request bodies")
	fs.IntVar(&c.WebhookBatchMaxBytes, "export-webhook-batch-max-bytes", d.WebhookBatchMaxBytes, "send a webhook batch once it holds this many bytes")
	c.WebhookBatchInterval = d.WebhookBatchInterval
	fs.Var(&c.WebhookBatchInterval, "export-webhook-batch-interval", "send a non-empty webhook batch at least this often")
	c.WebhookTimeout = d.WebhookTimeout
	fs.Var(&c.WebhookTimeout, "export-webhook-timeout", "timeout of one webhook request")
	c.WebhookRetryMaxInterval = d.WebhookRetryMaxInterval
	fs.Var(&c.WebhookRetryMaxInterval, "export-webhook-retry-max-interval", "longest wait between webhook retries (backoff doubles up to it)")
	fs.StringVar(&c.WebhookCAFile, "export-webhook-ca-file", d.WebhookCAFile, "PEM CA bundle to verify the webhook server (default: system roots)")
	fs.StringVar(&c.WebhookCertFile, "export-webhook-cert-file", d.WebhookCertFile, "PEM client certificate for the webhook")
	fs.StringVar(&c.WebhookKeyFile, "export-webhook-key-file", d.WebhookKeyFile, "PEM key of the webhook client certificate")
	fs.BoolVar(&c.WebhookInsecureSkipVerify, "export-webhook-insecure-skip-verify", d.WebhookInsecureSkipVerify, "do not verify the webhook server's certificate (testing only)")
	fs.StringVar(&c.WebhookSpoolDir, "export-webhook-spool-dir", d.WebhookSpoolDir, "directory where webhook batches wait while the receiver is unreachable (empty: memory only)")
	fs.IntVar(&c.WebhookSpoolMaxMB, "export-webhook-spool-max-mb", d.WebhookSpoolMaxMB, "most MiB of webhook batches kept on disk")
	fs.IntVar(&c.WebhookMemoryMB, "export-webhook-memory-mb", d.WebhookMemoryMB, "most MiB of webhook batches kept in memory")

	fs.StringVar(&c.Syslog, "export-syslog", d.Syslog, "also send events to syslog: udp://, tcp:// or tls://HOST:PORT (RFC 5424)")
	fs.StringVar(&c.SyslogFacility, "export-syslog-facility", d.SyslogFacility, "syslog facility: daemon, local0 ... local7, ...")
	fs.StringVar(&c.SyslogCAFile, "export-syslog-ca-file", d.SyslogCAFile, "PEM CA bundle to verify the tls:// syslog server")
	fs.StringVar(&c.SyslogCertFile, "export-syslog-cert-file", d.SyslogCertFile, "PEM client certificate for tls:// syslog")
	fs.StringVar(&c.SyslogKeyFile, "export-syslog-key-file", d.SyslogKeyFile, "PEM key of the syslog client certificate")
	fs.BoolVar(&c.SyslogInsecureSkipVerify, "export-syslog-insecure-skip-verify", d.SyslogInsecureSkipVerify, "do not verify the syslog server's certificate (testing only)")

	fs.IntVar(&c.QueueMB, "export-queue-mb", d.QueueMB, "MiB of encoded events each sink may hold before it drops (queue_full)")
	fs.StringVar(&c.Allowlist, "export-allowlist", d.Allowlist, "export only events matching one of these JSON filters, one per line (Tetragon syntax)")
	fs.StringVar(&c.Denylist, "export-denylist", d.Denylist, "do not export events matching one of these JSON filters, one per line")
	fs.StringSliceVar(&c.FieldInclude, "export-field-include", d.FieldInclude, "keep only these members of each event object, e.g. process.binary,process.pod")
	fs.StringSliceVar(&c.FieldExclude, "export-field-exclude", d.FieldExclude, "drop these members of each event object, e.g. process.arguments")
	fs.StringArrayVar(&c.Redact, "export-redact", d.Redact, `RE2 pattern whose capture groups are replaced by ***** in process arguments (repeatable), e.g. '(?:--password)(?:\s+|=)(\S+)'`)
	fs.BoolVar(&c.ArgumentsArray, "export-arguments-array", d.ArgumentsArray, "also export process arguments as an array, process.arguments_list (one string per argument)")
	fs.StringVar(&c.Format, "export-format", d.Format, "shape of the exported lines: vigil (Tetragon's field names plus Vigil's own fields) or tetragon (only what Tetragon's schema has, for strict Tetragon parsers; flows and alerts are not exported)")
	fs.IntVar(&c.RateLimit, "export-rate-limit", d.RateLimit, "export at most this many events per minute (0: no limit); enforcement, drops and alerts always pass")
	c.LostEventsInterval = d.LostEventsInterval
	fs.Var(&c.LostEventsInterval, "export-lost-events-interval", "how often lost_events and rate_limit_info records report new losses")
	c.FlushTimeout = d.FlushTimeout
	fs.Var(&c.FlushTimeout, "export-flush-timeout", "at shutdown, how long to try to deliver queued events")
}

// Validate checks every option without touching files or the network, and
// returns all problems, each naming its flag.
func (c *Config) Validate() error {
	_, err := c.compile()
	return err
}

// compiled holds what Validate parses, for New to use.
type compiled struct {
	format        encode.Format
	filters       *filter.Set
	mask          *filter.FieldMask
	redact        *filter.Redactor
	headers       http.Header
	syslogNetwork string
	syslogAddress string
	facility      int
}

func (c *Config) compile() (*compiled, error) {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	out := &compiled{filters: &filter.Set{}}

	if f, ok := encode.ParseFormat(c.Format); !ok {
		bad("export-format", "%q: want %s or %s", c.Format, encode.FormatNameVigil, encode.FormatNameTetragon)
	} else {
		out.format = f
		if f == encode.FormatTetragon && c.ArgumentsArray {
			bad("export-arguments-array", "Tetragon's schema has no arguments_list; it cannot be combined with --export-format %s", encode.FormatNameTetragon)
		}
	}

	if !c.Stdout && c.File == "" && c.Webhook == "" && c.Syslog == "" {
		errs = append(errs, errors.New("--export-stdout=false and no --export-file, --export-webhook or --export-syslog: events would go nowhere"))
	}
	if c.File != "" {
		if c.FileMaxSizeMB < 1 {
			bad("export-file-max-size-mb", "%d: must be at least 1", c.FileMaxSizeMB)
		}
		if c.FileMaxBackups < 0 {
			bad("export-file-max-backups", "%d: must not be negative", c.FileMaxBackups)
		}
		if d := c.FileRotationInterval; d != 0 && time.Duration(d) < time.Second {
			bad("export-file-rotation-interval", "%v: must be 0 or at least 1s", d)
		}
		if c.FilePerm == 0 || c.FilePerm&^0o777 != 0 {
			bad("export-file-perm", "%v: want permission bits such as 0600", c.FilePerm)
		} else if c.FilePerm&0o200 == 0 {
			bad("export-file-perm", "%v: the owner must be able to write the file", c.FilePerm)
		}
	}
	if c.Webhook != "" {
		u, err := url.Parse(c.Webhook)
		switch {
		case err != nil:
			bad("export-webhook", "%v", err)
		case u.Scheme != "http" && u.Scheme != "https":
			bad("export-webhook", "%q: want an http:// or https:// URL", c.Webhook)
		case u.Host == "":
			bad("export-webhook", "%q has no host", c.Webhook)
		}
		out.headers = http.Header{}
		for i, h := range c.WebhookHeaders {
			name, value, ok := strings.Cut(h, ":")
			name, value = strings.TrimSpace(name), strings.TrimSpace(value)
			if !ok || !validHeaderName(name) || strings.ContainsAny(value, "\r\n") {
				bad("export-webhook-header", "[%d] %q: want 'Name: value', e.g. 'Authorization: Splunk <token>'", i, h)
				continue
			}
			out.headers.Add(name, value)
		}
		if c.WebhookBatchMaxBytes < 1024 || c.WebhookBatchMaxBytes > spool.MaxRecord {
			bad("export-webhook-batch-max-bytes", "%d: want 1024 to %d", c.WebhookBatchMaxBytes, spool.MaxRecord)
		}
		for _, d := range []struct {
			flag string
			v    Duration
		}{
			{"export-webhook-batch-interval", c.WebhookBatchInterval},
			{"export-webhook-timeout", c.WebhookTimeout},
			{"export-webhook-retry-max-interval", c.WebhookRetryMaxInterval},
		} {
			if d.v <= 0 {
				bad(d.flag, "%v: must be positive", d.v)
			}
		}
		if c.WebhookSpoolDir != "" && c.WebhookSpoolMaxMB < 1 {
			bad("export-webhook-spool-max-mb", "%d: must be at least 1", c.WebhookSpoolMaxMB)
		}
		if c.WebhookMemoryMB < 1 {
			bad("export-webhook-memory-mb", "%d: must be at least 1", c.WebhookMemoryMB)
		}
	} else {
		for _, o := range []struct {
			flag string
			set  bool
		}{
			{"export-webhook-header", len(c.WebhookHeaders) > 0},
			{"export-webhook-ca-file", c.WebhookCAFile != ""},
			{"export-webhook-cert-file", c.WebhookCertFile != ""},
			{"export-webhook-key-file", c.WebhookKeyFile != ""},
		} {
			if o.set {
				bad(o.flag, "needs --export-webhook")
			}
		}
	}
	if c.Syslog != "" {
		network, addr, err := sink.ParseSyslogURL(c.Syslog)
		if err != nil {
			bad("export-syslog", "%v", err)
		}
		out.syslogNetwork, out.syslogAddress = network, addr
		if out.facility, err = sink.ParseFacility(c.SyslogFacility); err != nil {
			bad("export-syslog-facility", "%v", err)
		}
		if network != "tls" && (c.SyslogCAFile != "" || c.SyslogCertFile != "" || c.SyslogKeyFile != "" || c.SyslogInsecureSkipVerify) {
			bad("export-syslog", "TLS options are set but %q is not a tls:// address", c.Syslog)
		}
	}
	if c.QueueMB < 1 || c.QueueMB > 4096 {
		bad("export-queue-mb", "%d: want 1 to 4096", c.QueueMB)
	}
	var err error
	if out.filters.Allow, err = filter.Parse("--export-allowlist", c.Allowlist); err != nil {
		errs = append(errs, err)
	}
	if out.filters.Deny, err = filter.Parse("--export-denylist", c.Denylist); err != nil {
		errs = append(errs, err)
	}
	if out.mask, err = filter.NewFieldMask(c.FieldInclude, c.FieldExclude); err != nil {
		errs = append(errs, err)
	}
	if out.redact, err = filter.NewRedactor("--export-redact", c.Redact); err != nil {
		errs = append(errs, err)
	}
	if c.RateLimit < -1 {
		bad("export-rate-limit", "%d: want events per minute, or 0 for no limit", c.RateLimit)
	}
	if c.LostEventsInterval < Duration(100*time.Millisecond) {
		bad("export-lost-events-interval", "%v: must be at least 100ms", c.LostEventsInterval)
	}
	if c.FlushTimeout < 0 {
		bad("export-flush-timeout", "%v: must not be negative", c.FlushTimeout)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// validHeaderName reports whether s is an HTTP token (RFC 9110).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// Duration is a time.Duration that reads and writes strings like "30s", as
// a flag and in config files.
type Duration time.Duration

var _ pflag.Value = (*Duration)(nil)

func (d Duration) String() string { return time.Duration(d).String() }

// Set implements pflag.Value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 30s or 1h", s)
	}
	*d = Duration(v)
	return nil
}

// Type implements pflag.Value.
func (d *Duration) Type() string { return "duration" }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return strconv.AppendQuote(nil, d.String()), nil }

// UnmarshalJSON reads "30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("%s is not a duration string such as \"30s\"", b)
	}
	return d.Set(s)
}

// FileMode is a permission mode written in octal ("0600"), as a flag and in
// config files.
type FileMode fs.FileMode

var _ pflag.Value = (*FileMode)(nil)

func (m FileMode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// Set implements pflag.Value.
func (m *FileMode) Set(s string) error {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v&^0o777 != 0 {
		return fmt.Errorf("%q is not an octal permission such as 0600 or 0640", s)
	}
	*m = FileMode(v)
	return nil
}

// Type implements pflag.Value.
func (m *FileMode) Type() string { return "octal" }

// MarshalJSON writes the mode as an octal string.
func (m FileMode) MarshalJSON() ([]byte, error) { return strconv.AppendQuote(nil, m.String()), nil }

// UnmarshalJSON reads "0600", or a number that a YAML parser already read
// as octal (0600 in YAML 1.1 is 384).
func (m *FileMode) UnmarshalJSON(b []byte) error {
	if s, err := strconv.Unquote(string(b)); err == nil {
		return m.Set(s)
	}
	v, err := strconv.ParseUint(string(b), 10, 32)
	if err != nil || v&^0o777 != 0 {
		return fmt.Errorf("%s is not a permission; write it as a quoted octal string such as \"0600\"", b)
	}
	*m = FileMode(v)
	return nil
}
