package agent

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/tracingpolicies"
	"github.com/vigilsec/vigil/tracingsensor"
)

// Policies changed at run time through the control socket (`vigil policy
// add | delete | enable | disable`).
//
// A policy added with `vigil policy add` lives in the agent only: its
// source is "cli:FILE", it is not written anywhere, and an agent that
// restarts no longer has it (`vigil policy list` says "runtime only").
// Only such policies can be deleted; a policy from a watched file, the
// embedded defaults or the cluster is removed where it comes from, and
// delete says where. Any policy can be disabled: its programs are
// detached and its maps emptied, and it stays listed as disabled with its
// source. A disabled policy whose file changes stays disabled (the new
// version is kept for enable); one whose file is removed is forgotten.

// sourceCLI prefixes the source of policies added through the socket.
const sourceCLI = "cli:"

// disabledPolicy is a policy that `vigil policy disable` detached.
type disabledPolicy struct {
	source string
	spec   *tracingpolicies.Policy
	mode   tracingpolicies.Mode
}

// policyError is a refused request, with the problems of the file in
// FILE:LINE: field: message form and the HTTP status that fits.
type policyError struct {
	status   int
	msg      string
	problems []string
}

func (e *policyError) Error() string { return e.msg }

// addPolicies validates every document of file and loads them all, or
// none: a problem in one document, a name already in use or a load that
// fails leaves the agent as it was. It returns the keys it loaded and the
// warnings.
func (m *policyManager) addPolicies(file string, data []byte) (keys, warnings []string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.loaded()
	source := sourceCLI + file
	policies, perr := tracingpolicies.Parse(file, data)
	problems := manifest.AsErrors(file, perr)
	problems = append(problems, tracingpolicies.CheckUnique(policies)...)
	for _, p := range policies {
		for _, w := range p.Warnings {
			warnings = append(warnings, formatWarning(w))
		}
		warns, verr := tracingpolicies.Validate(p, kernelSpec(), &tracingpolicies.ValidateOptions{Tracefs: m.tracefs})
		for _, w := range warns {
			warnings = append(warnings, formatWarning(w))
		}
		problems = append(problems, manifest.AsErrors(file, verr)...)
		key := tracingsensor.Key(p.Namespace, p.Name)
		if d := m.disabled[key]; d != nil {
			problems = append(problems, p.Doc.Errorf("metadata.name", "policy %s exists, disabled, from %s (vigil policy enable %s)", key, d.source, key))
		} else if owner := m.owner(key); owner != "" {
			problems = append(problems, p.Doc.Errorf("metadata.name", "policy %s is already loaded from %s (vigil policy delete %s first, or choose another name)", key, owner, key))
		}
	}
	if len(policies) == 0 && len(problems) == 0 {
		problems = append(problems, &manifest.Error{File: file, Msg: "no TracingPolicy documents"})
	}
	if len(problems) > 0 {
		byLine(problems)
		out := make([]string, len(problems))
		for i, p := range problems {
			out[i] = p.Error()
		}
		return nil, warnings, &policyError{status: http.StatusBadRequest, problems: out,
			msg: fmt.Sprintf("%s: %d problems; nothing was loaded", file, len(problems))}
	}
	for _, p := range policies {
		key := tracingsensor.Key(p.Namespace, p.Name)
		if _, err := m.ts.Load(p, source); err != nil {
			for _, k := range keys {
				m.ts.Unload(k)
				delete(m.specs, k)
			}
			return nil, warnings, &policyError{status: http.StatusUnprocessableEntity,
				msg: fmt.Sprintf("%s: policy %s failed to load, so nothing of the file was loaded: %v", file, key, err)}
		}
		m.specs[key] = p
		keys = append(keys, key)
	}
	m.bySource[source] = append(m.bySource[source], keys...)
	m.log.WithFields(logrus.Fields{"source": source, "policies": strings.Join(keys, ",")}).Info("policies added at run time")
	return keys, warnings, nil
}

// deletePolicy unloads a policy added at run time. Others are refused with
// a hint at where they come from.
func (m *policyManager) deletePolicy(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	source := m.owner(key)
	if d := m.disabled[key]; d != nil {
		source = d.source
	}
	switch {
	case source == "":
		return &policyError{status: http.StatusNotFound, msg: fmt.Sprintf("no policy named %q (see vigil policy list)", key)}
	case !strings.HasPrefix(source, sourceCLI):
		return &policyError{status: http.StatusConflict, msg: fmt.Sprintf("policy %s %s; vigil policy disable %s detaches it until enabled", key, whereFrom(source), key)}
	}
	if m.ts.Get(key) != nil {
		if err := m.ts.Unload(key); err != nil {
			return err
		}
	}
	delete(m.disabled, key)
	delete(m.specs, key)
	m.forget(source, key)
	m.log.WithFields(logrus.Fields{"source": source, "policy": key}).Info("policy deleted")
	return nil
}

// whereFrom says where a policy of source is removed for good.
func whereFrom(source string) string {
	switch {
	case strings.HasPrefix(source, "embedded:"):
		return "is an embedded default (run the agent with --no-default-policies to leave the defaults out)"
	case strings.HasPrefix(source, "k8s:"):
		return "comes from the cluster (kubectl delete tracingpolicy removes it)"
	}
	return "comes from " + source + ", which the agent watches (remove the file, or the policy from it)"
}

// forget removes key from the policies of source.
func (m *policyManager) forget(source, key string) {
	keys := m.bySource[source]
	for i, k := range keys {
		if k == key {
			keys = append(keys[:i:i], keys[i+1:]...)
			break
		}
	}
	if len(keys) == 0 {
		delete(m.bySource, source)
		return
	}
	m.bySource[source] = keys
}

// disablePolicy detaches a loaded policy and keeps it, disabled.
func (m *policyManager) disablePolicy(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.disabled[key] != nil {
		return nil
	}
	p := m.ts.Get(key)
	spec := m.specs[key]
	if p == nil || spec == nil {
		if f, ok := m.failed[key]; ok {
			return &policyError{status: http.StatusConflict, msg: fmt.Sprintf("policy %s is not loaded (%v)", key, f.Err)}
		}
		return &policyError{status: http.StatusNotFound, msg: fmt.Sprintf("no loaded policy named %q (see vigil policy list)", key)}
	}
	d := &disabledPolicy{source: p.Source, spec: spec, mode: p.Mode()}
	if err := m.ts.Unload(key); err != nil {
		return err
	}
	m.disabled[key] = d
	m.log.WithFields(logrus.Fields{"source": d.source, "policy": key}).Info("policy disabled: programs detached")
	return nil
}

// enablePolicy loads a disabled policy again, in the mode it had.
func (m *policyManager) enablePolicy(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.loaded()
	d := m.disabled[key]
	if d == nil {
		if m.ts.Get(key) != nil {
			return nil
		}
		return &policyError{status: http.StatusNotFound, msg: fmt.Sprintf("no disabled policy named %q (see vigil policy list)", key)}
	}
	p, err := m.ts.Load(d.spec, d.source)
	if err != nil {
		return &policyError{status: http.StatusUnprocessableEntity, msg: fmt.Sprintf("policy %s failed to load; it stays disabled: %v", key, err)}
	}
	delete(m.disabled, key)
	if d.mode != "" && d.mode != p.Mode() {
		if err := m.ts.SetMode(key, d.mode); err != nil {
			m.log.WithError(err).WithField("policy", key).Warn("enabled policy kept its file's mode")
		}
	}
	m.log.WithFields(logrus.Fields{"source": d.source, "policy": key}).Info("policy enabled")
	return nil
}

// disabledStatuses lists the disabled policies for `vigil policy list`.
func (m *policyManager) disabledStatuses() []PolicyStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []PolicyStatus
	for _, d := range m.disabled {
		out = append(out, PolicyStatus{Name: d.spec.Name, Namespace: d.spec.Namespace, Source: d.source,
			State: StateDisabled, Mode: string(d.mode), Runtime: strings.HasPrefix(d.source, sourceCLI)})
	}
	return out
}

// StateDisabled is the state of a policy `vigil policy disable` detached.
const StateDisabled = "disabled"

// formatWarning prints a warning as FILE:LINE: field.path: warning: message,
// as `vigil policy validate` does.
func formatWarning(e *manifest.Error) string {
	w := *e
	w.Msg = "warning: " + e.Msg
	return w.Error()
}

// byLine orders the problems of one file by line.
func byLine(errs manifest.Errors) {
	for i := 1; i < len(errs); i++ {
		for j := i; j > 0 && errs[j].Line < errs[j-1].Line; j-- {
			errs[j], errs[j-1] = errs[j-1], errs[j]
		}
	}
}
