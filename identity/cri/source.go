package cri

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/vigilsec/vigil/identity/source"
)

// Defaults of Options.
const (
	DefaultPollInterval   = 2 * time.Second
	DefaultResyncInterval = 30 * time.Second
	DefaultTimeout        = 5 * time.Second
	maxBackoff            = 30 * time.Second
)

// Options tune a Source; zero values mean the defaults.
type Options struct {
	// PollInterval is how often the runtime is listed when it offers no
	// container events.
	PollInterval time.Duration
	// ResyncInterval is how often it is listed anyway when it does.
	ResyncInterval time.Duration
	// Timeout bounds each call to the runtime.
	Timeout time.Duration
}

func (o *Options) defaults() {
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = DefaultResyncInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
}

// kubeletLabels are the labels the kubelet adds to sandboxes and containers
// for its own bookkeeping; they are not the pod's labels.
var kubeletLabels = map[string]bool{
	"io.kubernetes.pod.name":       true,
	"io.kubernetes.pod.uid":        true,
	"io.kubernetes.container.name": true,
	"io.kubernetes.pod.namespace":  true, // added back by the resolver
}

// Source reports the pods of one runtime.
type Source struct {
	name   string
	client RuntimeClient
	opts   Options

	mu         sync.Mutex
	sandboxes  map[string]*sandboxEntry
	containers map[string]*containerEntry
	last       []source.Pod
}

type sandboxEntry struct {
	Sandbox
	withStatus bool
	seen       time.Time
}

type containerEntry struct {
	Container
	withStatus bool
	seen       time.Time
}

var (
	_ source.Source = (*Source)(nil)
	_ source.Looker = (*Source)(nil)
)

// NewSource returns a source reading from client, named name in logs and
// metrics. The source closes the client when Run returns.
func NewSource(name string, client RuntimeClient, opts Options) *Source {
	opts.defaults()
	return &Source{name: name, client: client, opts: opts,
		sandboxes: map[string]*sandboxEntry{}, containers: map[string]*containerEntry{}}
}

// Name implements source.Source.
func (s *Source) Name() string { return s.name }

// Run implements source.Source: a listing at start, then one after each
// burst of container events, or every PollInterval when the runtime has no
// events, and every ResyncInterval in any case. A failing runtime is
// retried with a backoff up to 30 s.
func (s *Source) Run(ctx context.Context, sink source.Sink) error {
	defer s.client.Close()
	var (
		synced, failing bool
		eventsOK        = true
		events          <-chan Event
		eventsErr       func() error
		backoff         = s.opts.PollInterval
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case _, ok := <-events:
			if !ok {
				err := eventsErr()
				events = nil
				if errors.Is(err, ErrNotSupported) {
					eventsOK = false
				} else if err != nil {
					sink.Failed(s.name, "watch", err)
				}
			}
			drain(events)
		}
		err := s.sync(ctx, sink)
		if ctx.Err() != nil {
			return nil
		}
		if !synced {
			synced = true
			sink.Synced(s.name)
		}
		if err != nil {
			failing = true
			sink.Failed(s.name, "list", err)
			timer.Reset(backoff)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = s.opts.PollInterval
		if failing {
			failing = false
			sink.Recovered(s.name)
		}
		if eventsOK && events == nil {
			ch, errf, err := s.client.Events(ctx)
			switch {
			case errors.Is(err, ErrNotSupported):
				eventsOK = false
			case err != nil:
				sink.Failed(s.name, "watch", err)
			default:
				events, eventsErr = ch, errf
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if events != nil {
			timer.Reset(s.opts.ResyncInterval)
		} else {
			timer.Reset(s.opts.PollInterval)
		}
	}
}

// drain takes the events already queued: one listing answers them all.
func drain(ch <-chan Event) {
	for ch != nil {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// sync lists the runtime, asks for the status of what is new and reports
// the pods when they changed.
func (s *Source) sync(ctx context.Context, sink source.Sink) error {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	sbs, err := s.client.ListSandboxes(cctx)
	cancel()
	if err != nil {
		return err
	}
	cctx, cancel = context.WithTimeout(ctx, s.opts.Timeout)
	cts, err := s.client.ListContainers(cctx)
	cancel()
	if err != nil {
		return err
	}
	// Status calls for what is new, outside the lock.
	s.mu.Lock()
	var needSB []Sandbox
	for _, sb := range sbs {
		if e := s.sandboxes[sb.ID]; e == nil || !e.withStatus || e.Ready != sb.Ready {
			needSB = append(needSB, sb)
		}
	}
	var needCT []Container
	for _, c := range cts {
		if e := s.containers[c.ID]; e == nil || !e.withStatus || e.State != c.State {
			needCT = append(needCT, c)
		}
	}
	s.mu.Unlock()

	gotSB := make(map[string]Sandbox, len(needSB))
	for _, sb := range needSB {
		st, err := s.sandboxStatus(ctx, sb.ID)
		if err == nil {
			gotSB[sb.ID] = st
		} else if !errors.Is(err, source.ErrNotFound) {
			sink.Failed(s.name, "sandbox status", err)
		}
	}
	gotCT := make(map[string]Container, len(needCT))
	for _, c := range needCT {
		st, err := s.containerStatus(ctx, c.ID)
		if err == nil {
			gotCT[c.ID] = st
		} else if !errors.Is(err, source.ErrNotFound) {
			sink.Failed(s.name, "container status", err)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	listed := make(map[string]bool, len(sbs)+len(cts))
	for _, sb := range sbs {
		listed[sb.ID] = true
		e := s.sandboxes[sb.ID]
		if st, ok := gotSB[sb.ID]; ok {
			e = &sandboxEntry{Sandbox: st, withStatus: true}
		} else if e == nil {
			e = &sandboxEntry{Sandbox: sb}
		} else {
			e.Ready = sb.Ready
		}
		e.seen = now
		s.sandboxes[sb.ID] = e
	}
	for _, c := range cts {
		listed[c.ID] = true
		e := s.containers[c.ID]
		if st, ok := gotCT[c.ID]; ok {
			if st.SandboxID == "" {
				st.SandboxID = c.SandboxID
			}
			e = &containerEntry{Container: st, withStatus: true}
		} else if e == nil {
			e = &containerEntry{Container: c}
		} else {
			e.State = c.State
		}
		e.seen = now
		s.containers[c.ID] = e
	}
	// Forget what the listing no longer has, unless a lookup added it
	// after the listing began.
	for id, e := range s.sandboxes {
		if !listed[id] && e.seen.Before(start) {
			delete(s.sandboxes, id)
		}
	}
	for id, e := range s.containers {
		if !listed[id] && e.seen.Before(start) {
			delete(s.containers, id)
		}
	}
	pods := s.podsLocked()
	if s.last != nil && reflect.DeepEqual(pods, s.last) {
		return nil
	}
	s.last = pods
	sink.Replace(s.name, pods)
	return nil
}

func (s *Source) sandboxStatus(ctx context.Context, id string) (Sandbox, error) {
	cctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	return s.client.SandboxStatus(cctx, id)
}

func (s *Source) containerStatus(ctx context.Context, id string) (Container, error) {
	cctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	return s.client.ContainerStatus(cctx, id)
}

// Lookup implements source.Looker: the pod of a container or of a sandbox
// (the pause container's cgroup carries the sandbox id).
func (s *Source) Lookup(ctx context.Context, id string) (source.Pod, error) {
	c, err := s.containerStatus(ctx, id)
	sandboxID := id
	switch {
	case err == nil:
		sandboxID = c.SandboxID
		if sandboxID == "" {
			return source.Pod{}, fmt.Errorf("container %s: the runtime names no pod sandbox for it", short(id))
		}
	case !errors.Is(err, source.ErrNotFound):
		return source.Pod{}, err
	}
	s.mu.Lock()
	sbe := s.sandboxes[sandboxID]
	s.mu.Unlock()
	var sb Sandbox
	if sbe != nil && sbe.withStatus {
		sb = sbe.Sandbox
	} else {
		sb, err = s.sandboxStatus(ctx, sandboxID)
		if err != nil {
			return source.Pod{}, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.sandboxes[sb.ID] = &sandboxEntry{Sandbox: sb, withStatus: true, seen: now}
	if c.ID != "" {
		s.containers[c.ID] = &containerEntry{Container: c, withStatus: true, seen: now}
	}
	var cs []*containerEntry
	for _, c := range s.containers {
		if c.SandboxID == sb.ID {
			cs = append(cs, c)
		}
	}
	p, ok := buildPod(s.sandboxes[sb.ID], cs)
	if !ok {
		return source.Pod{}, fmt.Errorf("pod sandbox %s has no pod metadata: %w", short(sb.ID), source.ErrNotFound)
	}
	return p, nil
}

// podsLocked builds the pods from the cache, sorted by key.
func (s *Source) podsLocked() []source.Pod {
	bySandbox := make(map[string][]*containerEntry, len(s.sandboxes))
	for _, c := range s.containers {
		bySandbox[c.SandboxID] = append(bySandbox[c.SandboxID], c)
	}
	out := make([]source.Pod, 0, len(s.sandboxes))
	for _, sb := range s.sandboxes {
		if p, ok := buildPod(sb, bySandbox[sb.ID]); ok {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// buildPod makes the pod of a sandbox and its containers.
func buildPod(sb *sandboxEntry, containers []*containerEntry) (source.Pod, bool) {
	if sb.Name == "" || sb.Namespace == "" {
		return source.Pod{}, false
	}
	p := source.Pod{
		Key: sb.ID, UID: sb.UID, Name: sb.Name, Namespace: sb.Namespace,
		IPs: sb.IPs, SandboxID: sb.ID,
	}
	for k, v := range sb.Labels {
		if kubeletLabels[k] {
			continue
		}
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		p.Labels[k] = v
	}
	for _, c := range containers {
		start := c.StartedAt
		if start.IsZero() {
			start = c.CreatedAt
		}
		p.Containers = append(p.Containers, source.Container{
			ID: c.ID, Name: c.Name, ImageName: c.Image, ImageID: c.ImageRef, StartTime: start,
		})
	}
	sort.Slice(p.Containers, func(i, j int) bool { return p.Containers[i].ID < p.Containers[j].ID })
	return p, true
}
