package ui

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/vigilsec/vigil/hubble"
)

// delta is a live update of the map: what changed since the last one.
type delta struct {
	Now   time.Time  `json:"now"`
	Nodes []nodeView `json:"nodes"`
	Edges []edgeView `json:"edges"`
	// Counts are edges whose sets (policies, processes...) did not change:
	// only their counts, verdict and last time, to keep updates small.
	Counts       []edgeCounts `json:"counts"`
	RemovedNodes []string     `json:"removed_nodes"`
	RemovedEdges []string     `json:"removed_edges"`
	Flows        []flowRow    `json:"flows"`
	// SkippedFlows are new flows that passed the filter but did not fit
	// in this update (the table shows how many).
	SkippedFlows int       `json:"skipped_flows"`
	Stats        statsView `json:"stats"`
}

// Most flows one live update carries.
const maxStreamFlows = 200

// stream sends the map under the request's filter as server-sent events:
// "map" with everything first, then every tick a "delta" with the edges
// and workloads that changed, appeared or left, and the new flows. Each
// client computes its own update from the shared map: a slow client only
// delays itself, and a stuck one is dropped after a write timeout.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		badRequest(w, err)
		return
	}
	// What came before the page is folded first: flows overwritten while
	// no page followed are unwatched, not missed.
	s.catchUp()
	s.streams.Add(1)
	defer s.streams.Add(-1)
	select {
	case s.following <- struct{}{}:
	default:
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")

	send := func(name string, v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			return false
		}
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write([]byte("event: " + name + "\ndata: ")); err != nil {
			return false
		}
		if _, err := w.Write(append(b, '\n', '\n')); err != nil {
			return false
		}
		return rc.Flush() == nil
	}

	_, seq := s.store.Oldest()
	v := s.graph.view(f, s.now(), s.store.Lost()).sorted()
	if !send("map", v) {
		return
	}
	edges := map[string]edgeSig{}
	nodes := map[string]bool{}
	for i := range v.Edges {
		edges[v.Edges[i].ID] = v.Edges[i].sig()
	}
	for _, n := range v.Nodes {
		nodes[n.ID] = true
	}
	t := time.NewTicker(s.opts.Tick)
	defer t.Stop()
	var batch []hubble.Record
	for {
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
		now := s.now()
		v := s.graph.view(f, now, s.store.Lost())
		d := delta{Now: now, Nodes: []nodeView{}, Edges: []edgeView{}, Counts: []edgeCounts{}, RemovedNodes: []string{}, RemovedEdges: []string{},
			Flows: []flowRow{}, Stats: v.Stats}
		seenE := make(map[string]bool, len(v.Edges))
		for i := range v.Edges {
			e := &v.Edges[i]
			seenE[e.ID] = true
			old, seen := edges[e.ID]
			if sig := e.sig(); old != sig {
				edges[e.ID] = sig
				if seen && old.sets == sig.sets {
					d.Counts = append(d.Counts, edgeCounts{e.ID, e.Forwarded, e.Dropped, e.Audit, e.Verdict, e.Last})
				} else {
					d.Edges = append(d.Edges, *e)
				}
			}
		}
		for id := range edges {
			if !seenE[id] {
				delete(edges, id)
				d.RemovedEdges = append(d.RemovedEdges, id)
			}
		}
		seenN := make(map[string]bool, len(v.Nodes))
		for _, n := range v.Nodes {
			seenN[n.ID] = true
			if !nodes[n.ID] {
				nodes[n.ID] = true
				d.Nodes = append(d.Nodes, n)
			}
		}
		for id := range nodes {
			if !seenN[id] {
				delete(nodes, id)
				d.RemovedNodes = append(d.RemovedNodes, id)
			}
		}
		var lost uint64
		batch, seq, lost = s.store.ReadRecords(batch[:0], seq, 0)
		d.SkippedFlows = int(lost)
		for i := len(batch) - 1; i >= 0; i-- {
			if f.matchRecord(batch[i], &s.graph.procs, now) {
				if len(d.Flows) < maxStreamFlows {
					d.Flows = append(d.Flows, rowOf(batch[i].Flow(), &s.graph.procs))
				} else {
					d.SkippedFlows++
				}
			}
		}
		clear(batch)
		if !send("delta", d) {
			return
		}
		s.updates.Add(1)
	}
}

// edgeCounts is the short update of an edge.
type edgeCounts struct {
	ID        string    `json:"id"`
	Forwarded uint64    `json:"forwarded"`
	Dropped   uint64    `json:"dropped"`
	Audit     uint64    `json:"audit"`
	Verdict   string    `json:"verdict"`
	Last      time.Time `json:"last"`
}
