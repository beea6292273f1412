package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vigilsec/vigil/exporter"
	"github.com/vigilsec/vigil/exporter/filter"
	"github.com/vigilsec/vigil/tracingpolicies"
	"github.com/vigilsec/vigil/tracingsensor"
)

// The control socket speaks HTTP over a unix socket (mode 0600, so only
// root, or the agent's user, can use it):
//
//	GET /v1/policies                     the loaded, disabled and failed policies (PolicyStatus list)
//	POST /v1/policies?file=F             add the policies of the body (a policy file named F), all or none
//	DELETE /v1/policies?name=N           delete a policy added with POST
//	PUT /v1/policies/state?name=N&state=enabled|disabled
//	PUT /v1/policies/mode?name=N&mode=M  switch a policy to enforce or monitor
//	GET /v1/status                       the agent's Status (vigil status)
//	GET /v1/events?format=json|text|compact  a live tail of the event stream,
//	    &allow=LINE&deny=LINE&require=LINE   with the export filters' syntax
//	    &color=1&timestamps=1                (require: every line must match too)
const (
	pathPolicies    = "/v1/policies"
	pathPolicyMode  = "/v1/policies/mode"
	pathPolicyState = "/v1/policies/state"
	pathEvents      = "/v1/events"
	pathStatus      = "/v1/status"
)

// PolicyStatus is one entry of `vigil policy list`.
type PolicyStatus struct {
	Name      string                     `json:"name"`
	Namespace string                     `json:"namespace,omitempty"`
	Source    string                     `json:"source"`
	State     string                     `json:"state"`
	Mode      string                     `json:"mode,omitempty"`
	Hooks     []tracingsensor.HookStatus `json:"hooks,omitempty"`
	Events    uint64                     `json:"events"`
	Error     string                     `json:"error,omitempty"`
	LoadedAt  *time.Time                 `json:"loaded_at,omitempty"`
	// Runtime is set for policies added with `vigil policy add`: they are
	// not in any file and are gone when the agent restarts.
	Runtime bool `json:"runtime,omitempty"`
}

func (a *Agent) policyStatuses() []PolicyStatus {
	var out []PolicyStatus
	if a.ts != nil {
		for _, p := range a.ts.Policies() {
			t := p.LoadedAt
			out = append(out, PolicyStatus{
				Name: p.Name, Namespace: p.Namespace, Source: p.Source, State: string(tracingsensor.StateLoaded),
				Mode: string(p.Mode()), Hooks: p.Hooks(), Events: p.Events(), LoadedAt: &t,
				Runtime: strings.HasPrefix(p.Source, sourceCLI),
			})
		}
	}
	if a.pm != nil {
		out = append(out, a.pm.disabledStatuses()...)
		for key, f := range a.pm.failures() {
			st := PolicyStatus{Name: key, Source: f.Source, State: string(tracingsensor.StateError), Error: f.Err.Error()}
			// A policy that failed to update may still run its previous
			// version: say both.
			for i := range out {
				if tracingsensor.Key(out[i].Namespace, out[i].Name) == key {
					out[i].Error = "update failed, previous version running: " + f.Err.Error()
					st.Name = ""
				}
			}
			if st.Name != "" {
				out = append(out, st)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// serveControl listens on the control socket.
func (a *Agent) serveControl() (*http.Server, error) {
	path := a.cfg.SocketPath
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	// A socket left by an agent that died is removed; a live one is not.
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("--socket %s: another agent is listening there", path)
	}
	os.Remove(path)
	ln, err := listenUnix(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathPolicies, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.policyStatuses())
	})
	mux.HandleFunc("POST "+pathPolicies, a.handleAddPolicy)
	mux.HandleFunc("DELETE "+pathPolicies, a.handleDeletePolicy)
	mux.HandleFunc("PUT "+pathPolicyState, a.handlePolicyState)
	mux.HandleFunc("PUT "+pathPolicyMode, a.handleMode)
	mux.HandleFunc("GET "+pathEvents, a.handleEvents)
	mux.HandleFunc("GET "+pathConfig, a.handleConfig)
	mux.HandleFunc("GET "+pathLogs, a.handleLogs)
	mux.HandleFunc("GET "+pathStatus, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.status())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.WithError(err).Error("control socket stopped")
		}
	}()
	return srv, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

type controlError struct {
	Error string `json:"error"`
	// Problems are the FILE:LINE: field: message lines of a refused file.
	Problems []string `json:"problems,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// maxPolicyFile bounds the size of a policy file sent to the agent.
const maxPolicyFile = 4 << 20

// AddResult is the answer to a policy file added at run time.
type AddResult struct {
	Policies []string `json:"policies"`
	Warnings []string `json:"warnings,omitempty"`
}

func (a *Agent) handleAddPolicy(w http.ResponseWriter, r *http.Request) {
	file := r.URL.Query().Get("file")
	if file == "" {
		writeJSON(w, http.StatusBadRequest, controlError{Error: "no file name given (file=...)"})
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxPolicyFile+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, controlError{Error: "read policy file: " + err.Error()})
		return
	}
	if len(data) > maxPolicyFile {
		writeJSON(w, http.StatusRequestEntityTooLarge, controlError{Error: fmt.Sprintf("%s: larger than %d MiB", file, maxPolicyFile>>20)})
		return
	}
	if a.pm == nil {
		writeJSON(w, http.StatusServiceUnavailable, controlError{Error: "the agent is not ready"})
		return
	}
	keys, warnings, err := a.pm.addPolicies(file, data)
	if err != nil {
		writePolicyError(w, err, warnings)
		return
	}
	writeJSON(w, http.StatusOK, AddResult{Policies: keys, Warnings: warnings})
}

func (a *Agent) handleDeletePolicy(w http.ResponseWriter, r *http.Request) {
	if a.pm == nil {
		writeJSON(w, http.StatusServiceUnavailable, controlError{Error: "the agent is not ready"})
		return
	}
	name := r.URL.Query().Get("name")
	if err := a.pm.deletePolicy(name); err != nil {
		writePolicyError(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"name": name, "state": "deleted"})
}

func (a *Agent) handlePolicyState(w http.ResponseWriter, r *http.Request) {
	if a.pm == nil {
		writeJSON(w, http.StatusServiceUnavailable, controlError{Error: "the agent is not ready"})
		return
	}
	name, state := r.URL.Query().Get("name"), r.URL.Query().Get("state")
	var err error
	switch state {
	case "enabled":
		err = a.pm.enablePolicy(name)
	case "disabled":
		err = a.pm.disablePolicy(name)
	default:
		writeJSON(w, http.StatusBadRequest, controlError{Error: fmt.Sprintf("unknown state %q: want enabled or disabled", state)})
		return
	}
	if err != nil {
		writePolicyError(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"name": name, "state": state})
}

func writePolicyError(w http.ResponseWriter, err error, warnings []string) {
	var pe *policyError
	if errors.As(err, &pe) {
		writeJSON(w, pe.status, controlError{Error: pe.msg, Problems: pe.problems, Warnings: warnings})
		return
	}
	writeJSON(w, http.StatusInternalServerError, controlError{Error: err.Error(), Warnings: warnings})
}

func (a *Agent) handleMode(w http.ResponseWriter, r *http.Request) {
	name, mode := r.URL.Query().Get("name"), tracingpolicies.Mode(r.URL.Query().Get("mode"))
	if mode != tracingpolicies.ModeEnforce && mode != tracingpolicies.ModeMonitor {
		writeJSON(w, http.StatusBadRequest, controlError{Error: fmt.Sprintf("unknown mode %q: want enforce or monitor", mode)})
		return
	}
	if a.ts == nil || a.ts.Get(name) == nil {
		writeJSON(w, http.StatusNotFound, controlError{Error: fmt.Sprintf("no loaded policy named %q (see vigil policy list)", name)})
		return
	}
	if err := a.ts.SetMode(name, mode); err != nil {
		writeJSON(w, http.StatusInternalServerError, controlError{Error: err.Error()})
		return
	}
	a.log.WithFields(map[string]any{"policy": name, "mode": mode}).Info("policy mode changed")
	writeJSON(w, http.StatusOK, map[string]string{"name": name, "mode": string(mode)})
}

func (a *Agent) handleEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts := exporter.SubscribeOptions{Color: q.Get("color") == "1", Timestamps: q.Get("timestamps") == "1"}
	switch q.Get("format") {
	case "", "json":
	case "text":
		opts.Format = exporter.FormatText
	case "compact":
		opts.Format = exporter.FormatCompact
	default:
		writeJSON(w, http.StatusBadRequest, controlError{Error: fmt.Sprintf("unknown format %q: want json, compact or text", q.Get("format"))})
		return
	}
	var err error
	if allow := q["allow"]; len(allow) > 0 {
		if opts.Allow, err = filter.Parse("--allow", joinLines(allow)); err != nil {
			writeJSON(w, http.StatusBadRequest, controlError{Error: err.Error()})
			return
		}
	}
	if deny := q["deny"]; len(deny) > 0 {
		if opts.Deny, err = filter.Parse("--deny", joinLines(deny)); err != nil {
			writeJSON(w, http.StatusBadRequest, controlError{Error: err.Error()})
			return
		}
	}
	if require := q["require"]; len(require) > 0 {
		if opts.Require, err = filter.Parse("filter flags", joinLines(require)); err != nil {
			writeJSON(w, http.StatusBadRequest, controlError{Error: err.Error()})
			return
		}
	}
	sub := a.exp.Subscribe(opts)
	defer sub.Cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case line, ok := <-sub.C:
			if !ok {
				return
			}
			if _, err := w.Write(line); err != nil {
				return
			}
			// Write what is queued, then flush once.
			for more := true; more; {
				select {
				case l, ok := <-sub.C:
					if !ok {
						return
					}
					if _, err := w.Write(l); err != nil {
						return
					}
				default:
					more = false
				}
			}
			if fl != nil {
				fl.Flush()
			}
		}
	}
}

func joinLines(lines []string) string {
	out := ""
	for _, l := range lines {
		out += l + "\n"
	}
	return out
}
