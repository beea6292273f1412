package agent

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// What `vigil bugtool` asks the agent for: its effective configuration and
// its recent log lines, both with secrets taken out here, so that they
// never leave the agent.
//
//	GET /v1/config  the configuration the agent runs with (JSON), redacted
//	GET /v1/logs    its last log lines (JSON lines), redacted

const (
	pathConfig = "/v1/config"
	pathLogs   = "/v1/logs"
)

// Redacted replaces a secret in what the agent hands out.
const Redacted = "<redacted>"

// secretKey matches the names of configuration keys whose values are
// secrets (the values of --export-webhook-header are "Name: value"; the
// name is kept).
var secretKey = regexp.MustCompile(`(?i)(token|secret|password|passwd|credential|apikey|api-key|authorization|cookie|header)`)

// secretText matches secrets inside free text: bearer and basic
// credentials, "password=..." and the like, PEM blocks.
var secretText = []*regexp.Regexp{
	regexp.MustCompile(`(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]+`),
	regexp.MustCompile(`(?i)\b(password|passwd|secret|token|api[-_]?key|access[-_]?key|auth)\s*[=:]\s*[^\s&,"']+`),
	regexp.MustCompile(`-----BEGIN [A-Z ]+-----[\s\S]*?(-----END [A-Z ]+-----|$)`),
}

// urlInText finds URLs in text, whose user info and query values are
// secrets as often as not.
var urlInText = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+`)

// redactText takes the secrets out of a string: credentials in URLs (user
// info, query values), bearer tokens, key=value secrets, PEM blocks.
func redactText(s string) string {
	s = urlInText.ReplaceAllStringFunc(s, redactURL)
	for _, re := range secretText {
		s = re.ReplaceAllStringFunc(s, func(m string) string {
			if strings.HasPrefix(m, "-----BEGIN") {
				return Redacted
			}
			if i := strings.IndexAny(m, "=: \t"); i > 0 {
				j := i
				for j < len(m) && strings.ContainsRune("=: \t", rune(m[j])) {
					j++
				}
				return m[:j] + Redacted
			}
			return Redacted
		})
	}
	return s
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	changed := false
	if u.User != nil {
		u.User = url.User(Redacted)
		changed = true
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{Redacted}
		}
		u.RawQuery = q.Encode()
		changed = true
	}
	if !changed {
		return raw
	}
	out := u.String()
	// Keep the marker readable rather than percent-encoded.
	return strings.NewReplacer(url.QueryEscape(Redacted), Redacted, url.PathEscape(Redacted), Redacted).Replace(out)
}

// redactConfig walks a JSON tree: values of secret keys are replaced (for
// "Name: value" strings, the value), every other string is redactText-ed.
func redactConfig(v any, secret bool) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			x[k] = redactConfig(val, secret || secretKey.MatchString(k) && !isPathKey(k))
		}
		return x
	case []any:
		for i := range x {
			x[i] = redactConfig(x[i], secret)
		}
		return x
	case string:
		if secret && x != "" {
			if name, _, ok := strings.Cut(x, ":"); ok && !strings.Contains(name, " ") && !strings.Contains(x, "://") {
				return name + ": " + Redacted
			}
			return Redacted
		}
		return redactText(x)
	}
	return v
}

// isPathKey reports whether a key names a file (a token file, a key
// file): its value is a path, not the secret.
func isPathKey(k string) bool {
	k = strings.ToLower(k)
	return strings.HasSuffix(k, "file") || strings.HasSuffix(k, "-file") || strings.HasSuffix(k, "dir") || strings.HasSuffix(k, "path")
}

// effectiveConfig is the agent's configuration as JSON, redacted.
func (a *Agent) effectiveConfig() (any, error) {
	b, err := json.Marshal(a.cfg)
	if err != nil {
		return nil, err
	}
	var tree any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	return redactConfig(tree, false), nil
}

// logRing keeps the agent's last log lines, redacted, for bug reports.
type logRing struct {
	mu    sync.Mutex
	lines [][]byte
	next  int
	full  bool
	fmt   logrus.JSONFormatter
}

const logRingLines = 1000

func newLogRing() *logRing { return &logRing{lines: make([][]byte, logRingLines)} }

func (r *logRing) Levels() []logrus.Level { return logrus.AllLevels }

func (r *logRing) Fire(e *logrus.Entry) error {
	b, err := r.fmt.Format(e)
	if err != nil {
		return nil
	}
	line := []byte(redactText(string(b)))
	r.mu.Lock()
	r.lines[r.next] = line
	r.next = (r.next + 1) % len(r.lines)
	r.full = r.full || r.next == 0
	r.mu.Unlock()
	return nil
}

// snapshot returns the kept lines, oldest first.
func (r *logRing) snapshot() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []byte
	if r.full {
		for _, l := range r.lines[r.next:] {
			out = append(out, l...)
		}
	}
	for _, l := range r.lines[:r.next] {
		out = append(out, l...)
	}
	return out
}

func (a *Agent) handleConfig(w http.ResponseWriter, _ *http.Request) {
	cfg, err := a.effectiveConfig()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, controlError{Error: "encode the configuration: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	enc.Encode(cfg)
}

func (a *Agent) handleLogs(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	w.Write(a.logs.snapshot())
}
