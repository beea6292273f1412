package main

import (
	"strings"
	"testing"
)

func TestEventsFlags(t *testing.T) {
	tests := []struct {
		name string
		cfg  eventsConfig
		want string // the filter line, or the error
	}{
		{"none", eventsConfig{}, ""},
		{"tetra flags", eventsConfig{Namespaces: []string{"prod", "shop"}, Pods: []string{"web-.*"}, Processes: []string{"curl"},
			Policies: []string{"file-guard"}, EventTypes: []string{"PROCESS_EXEC", "process_kprobe"}},
			`{"binary_regex":["curl"],"event_set":["PROCESS_EXEC","PROCESS_KPROBE"],"namespace":["prod","shop"],"pod_regex":["web-.*"],"policy_names":["file-guard"]}`},
		{"host alone", eventsConfig{Host: true}, `{"namespace":[""]}`},
		{"host and a namespace", eventsConfig{Host: true, Namespaces: []string{"prod"}}, `{"namespace":["prod",""]}`},
		{"unknown type", eventsConfig{EventTypes: []string{"PROCESS_EXEK"}},
			`--event-types: unknown event type "PROCESS_EXEK" (valid: PROCESS_EXEC, PROCESS_EXIT, PROCESS_KPROBE, PROCESS_TRACEPOINT, PROCESS_LSM, FLOW, ALERT, LOST_EVENTS, RATE_LIMIT_INFO, PROCESS_UPROBE, PROCESS_USDT)`},
		{"tetragon-only type", eventsConfig{EventTypes: []string{"PROCESS_LOADER"}},
			`--event-types: Vigil produces no PROCESS_LOADER events (valid: PROCESS_EXEC, PROCESS_EXIT, PROCESS_KPROBE, PROCESS_TRACEPOINT, PROCESS_LSM, FLOW, ALERT, LOST_EVENTS, RATE_LIMIT_INFO, PROCESS_UPROBE, PROCESS_USDT)`},
		{"bad regex", eventsConfig{Pods: []string{"web-(["}}, `--pod "web-([": not a regular expression: error parsing regexp: missing closing ]: ` + "`[`"},
		{"bad output", eventsConfig{Output: "yaml"}, `--output: unknown format "yaml" (want json, compact or text)`},
		{"bad color", eventsConfig{Color: "sometimes"}, `--color: unknown value "sometimes" (want auto, always or never)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			if c.Output == "" {
				c.Output = "json"
			}
			if c.Color == "" {
				c.Color = "auto"
			}
			if err := c.Validate(); err != nil {
				if err.Error() != tt.want {
					t.Errorf("error\n got %s\nwant %s", err, tt.want)
				}
				return
			}
			if got := c.requireLine(); got != tt.want {
				t.Errorf("filter line\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// What a user sees for bad flags and a missing agent: a usage error (2)
// that lists the valid values, or a hint that no agent runs there (1).
func TestEventsErrors(t *testing.T) {
	sock := t.TempDir() + "/vigil.sock"
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"events", "--socket", sock, "-e", "PROCESS_EXEC,BOGUS"}, 2, `--event-types: unknown event type "BOGUS" (valid: PROCESS_EXEC, PROCESS_EXIT,`},
		{[]string{"events", "--socket", sock, "--no-such-flag"}, 2, "unknown flag: --no-such-flag (see vigil events --help)"},
		{[]string{"events", "--socket", sock, "-o", "compact"}, 1, "no agent is listening on " + sock},
	}
	for _, tt := range tests {
		res := runVigil(t, nil, tt.args...)
		if res.Code != tt.code || !strings.Contains(res.Stderr, tt.want) {
			t.Errorf("vigil %v: exit %d, stderr %q; want exit %d and %q", tt.args, res.Code, res.Stderr, tt.code, tt.want)
		}
	}
}
