package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
)

// Client talks to a running agent over its control socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the agent listening on socket.
func NewClient(socket string) *Client {
	return &Client{socket: socket, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}}
}

// RequestError is a request the agent refused; Problems are the
// FILE:LINE: field: message lines of a refused policy file.
type RequestError struct {
	Msg                string
	Problems, Warnings []string
}

func (e *RequestError) Error() string { return e.Msg }

func (c *Client) do(ctx context.Context, method, path string, q url.Values) (*http.Response, error) {
	return c.doBody(ctx, method, path, q, nil)
}

func (c *Client) doBody(ctx context.Context, method, path string, q url.Values, body []byte) (*http.Response, error) {
	u := "http://vigil" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("no agent is listening on %s (is `vigil agent` running? --socket sets another path)", c.socket)
		case errors.Is(err, os.ErrPermission):
			return nil, fmt.Errorf("%s: permission denied (the socket is mode 0600: run as root)", c.socket)
		}
		return nil, fmt.Errorf("connect to the agent on %s: %w", c.socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var ce controlError
		if json.NewDecoder(resp.Body).Decode(&ce) == nil && ce.Error != "" {
			return nil, &RequestError{Msg: ce.Error, Problems: ce.Problems, Warnings: ce.Warnings}
		}
		return nil, fmt.Errorf("agent answered %s", resp.Status)
	}
	return resp, nil
}

// Policies returns the agent's loaded and failed policies.
func (c *Client) Policies(ctx context.Context) ([]PolicyStatus, error) {
	resp, err := c.do(ctx, http.MethodGet, pathPolicies, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []PolicyStatus
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("read policy list: %w", err)
	}
	return out, nil
}

// SetMode switches a loaded policy to enforce or monitor.
func (c *Client) SetMode(ctx context.Context, name, mode string) error {
	resp, err := c.do(ctx, http.MethodPut, pathPolicyMode, url.Values{"name": {name}, "mode": {mode}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	resp, err := c.do(ctx, http.MethodGet, pathStatus, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out Status
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("read the agent's status: %w", err)
	}
	return &out, nil
}

// Config returns the agent's effective configuration, with its secrets
// redacted by the agent.
func (c *Client) Config(ctx context.Context) (json.RawMessage, error) {
	return c.getRaw(ctx, pathConfig)
}

// Logs returns the agent's recent log lines (JSON lines), redacted.
func (c *Client) Logs(ctx context.Context) ([]byte, error) {
	return c.getRaw(ctx, pathLogs)
}

func (c *Client) getRaw(ctx context.Context, path string) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

// AddPolicies sends a policy file to the agent, which validates every
// document and loads them all or none. file names it in messages.
func (c *Client) AddPolicies(ctx context.Context, file string, data []byte) (*AddResult, error) {
	resp, err := c.doBody(ctx, http.MethodPost, pathPolicies, url.Values{"file": {file}}, data)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out AddResult
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("read the agent's answer: %w", err)
	}
	return &out, nil
}

// DeletePolicy unloads a policy added with AddPolicies.
func (c *Client) DeletePolicy(ctx context.Context, name string) error {
	resp, err := c.do(ctx, http.MethodDelete, pathPolicies, url.Values{"name": {name}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// SetPolicyEnabled enables or disables (detaches) a policy.
func (c *Client) SetPolicyEnabled(ctx context.Context, name string, enabled bool) error {
	state := "disabled"
	if enabled {
		state = "enabled"
	}
	resp, err := c.do(ctx, http.MethodPut, pathPolicyState, url.Values{"name": {name}, "state": {state}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// EventsOptions select the live tail.
type EventsOptions struct {
	// Format is json (the default), compact or text.
	Format string
	Color  bool
	// Timestamps starts compact lines with the event's time.
	Timestamps bool
	// Allow and Deny are filter lines (JSON objects), as in the export
	// allow and deny lists.
	Allow, Deny []string
	// Require is a filter line every event must match too (the getevents
	// flags of `vigil events`); lost-event notices always pass.
	Require string
}

// Events streams the agent's events to w until ctx ends or the agent stops.
func (c *Client) Events(ctx context.Context, opts EventsOptions, w io.Writer) error {
	q := url.Values{}
	if opts.Format != "" {
		q.Set("format", opts.Format)
	}
	if opts.Color {
		q.Set("color", "1")
	}
	if opts.Timestamps {
		q.Set("timestamps", "1")
	}
	if opts.Require != "" {
		q.Set("require", opts.Require)
	}
	q["allow"] = opts.Allow
	q["deny"] = opts.Deny
	resp, err := c.do(ctx, http.MethodGet, pathEvents, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	return errors.New("the agent closed the event stream")
}
