package ui

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzParseFilter: any query string either gives a filter that applies to
// the map and its flows, or an error naming the parameter.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"ns=default&verdict=dropped&window=1h", "label=org%3Dempire", "label=k8s:app+in+(a,b)",
		"window=all&node=node-a", "verdict=forwarded,audit", "window=2d", "label=a+in+(b"} {
		f.Add(s)
	}
	store, _ := deathstarStore(f)
	srv, err := NewServer(store, nil, Options{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	oldest, next := store.Oldest()
	held, _, _ := store.Read(nil, oldest, int(next-oldest))
	for _, fl := range held {
		srv.graph.add(fl)
	}
	f.Fuzz(func(t *testing.T, q string) {
		vals, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		vf, err := parseFilter(vals)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "verdict:") && !strings.HasPrefix(msg, "label:") && !strings.HasPrefix(msg, "window:") {
				t.Errorf("error %q names no parameter", msg)
			}
			return
		}
		now := time.Now()
		srv.graph.view(vf, now, 0)
		for _, fl := range held {
			vf.matchFlow(fl, now)
		}
	})
}
