package ui

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/apiauth"
	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter"
	"github.com/vigilsec/vigil/hubble"
)

// Source is what Start needs of the agent's exporter.
type Source interface {
	SubscribeEvents(exporter.EventSubscribeOptions) *exporter.EventSubscription
	NodeName() string
	RedactArgs(string) string
}

var _ Source = (*exporter.Exporter)(nil)

// Start serves the agent's flows: it subscribes to the exported flow
// events (with the exporter's redaction), keeps them in a store, and serves
// the Hubble Observer API and the web UI on the configured addresses. The
// returned stop ends all of it and waits. Listen errors are returned at
// once, naming the flag.
func Start(ctx context.Context, cfg Config, src Source, log logrus.FieldLogger) (stop func(), err error) {
	if !cfg.Enabled() {
		return func() {}, nil
	}
	auth, err := apiauth.New(cfg.Auth)
	if err != nil {
		return nil, fmt.Errorf("--api-*: %w", err)
	}
	conv := hubble.NewConverter(src.NodeName(), src.RedactArgs)
	store, err := hubble.NewEventStore(cfg.FlowBuffer, conv)
	if err != nil {
		return nil, fmt.Errorf("--flow-buffer: %w", err)
	}
	var uiLis, hubbleLis net.Listener
	if cfg.Addr != "" {
		if uiLis, err = auth.Listen(cfg.Addr); err != nil {
			return nil, fmt.Errorf("--ui-addr: %w", err)
		}
	}
	if cfg.HubbleAddr != "" {
		// gRPC does its own TLS handshake: a plain listener.
		if hubbleLis, err = net.Listen("tcp", cfg.HubbleAddr); err != nil {
			if uiLis != nil {
				uiLis.Close()
			}
			return nil, fmt.Errorf("--hubble-addr: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	run := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil {
				log.WithError(err).WithField("server", name).Error("flow API stopped")
			}
		}()
	}

	sub := src.SubscribeEvents(exporter.EventSubscribeOptions{Name: "flows", Types: []event.Type{event.TypeFlow}, Buffer: 8192})
	// The feed only appends: Hubble flows are built when the Observer API
	// reads them, and the map folds the events while a page looks at it.
	run("feed", func() error {
		var reported uint64
		for {
			select {
			case <-ctx.Done():
				return nil
			case ev, ok := <-sub.C:
				if !ok {
					return nil
				}
				if d := sub.Dropped(); d != reported {
					store.AddLost(d - reported)
					reported = d
				}
				store.PutEvent(ev)
			}
		}
	})
	if hubbleLis != nil {
		srv := hubble.NewServer(store, hubble.ServerOptions{NodeName: src.NodeName(), Address: hubbleLis.Addr().String(), TLS: cfg.Auth.TLS()})
		run("hubble", func() error { return hubble.Serve(ctx, hubbleLis, srv, auth.GRPCOptions()...) })
		log.WithField("addr", hubbleLis.Addr().String()).Info("Hubble Observer API serving")
	}
	if uiLis != nil {
		srv, err := NewServer(store, auth, Options{Mode: "agent", NodeName: src.NodeName()}, log)
		if err != nil {
			cancel()
			uiLis.Close()
			sub.Cancel()
			wg.Wait()
			return nil, err
		}
		run("ui-map", func() error { return srv.Run(ctx) })
		run("ui", func() error { return Serve(ctx, uiLis, srv.Handler(), log) })
		log.WithField("addr", uiLis.Addr().String()).Info("web UI serving")
	}
	return func() {
		cancel()
		sub.Cancel()
		wg.Wait()
	}, nil
}
