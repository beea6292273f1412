package ui

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/apiauth"
	"github.com/vigilsec/vigil/hubble"
)

// NodeStatus is one node a UI speaks for (the relay's peers).
type NodeStatus struct {
	Name      string `json:"name"`
	Address   string `json:"address,omitempty"`
	Connected bool   `json:"connected"`
	Error     string `json:"error,omitempty"`
}

// Options describe what a UI server shows besides the flows.
type Options struct {
	// Mode is "agent" or "relay", shown in the page's header.
	Mode string
	// NodeName is the agent's node.
	NodeName string
	// Nodes lists the relay's peers; nil for an agent.
	Nodes func() []NodeStatus
	// Tick is how often live updates are sent (default one second).
	Tick time.Duration
}

// Server is the UI's HTTP side over a flow store.
type Server struct {
	store *hubble.Store
	graph *graph
	auth  *apiauth.Authenticator
	opts  Options
	log   logrus.FieldLogger
	files fs.FS
	now   func() time.Time

	// streams are the open live streams; updates the live updates sent.
	streams atomic.Int64
	updates atomic.Uint64
	// following wakes Run when a stream opens.
	following chan struct{}

	// foldMu guards the map's cursor in the store: next is the first flow
	// not yet folded.
	foldMu sync.Mutex
	next   uint64
	batch  []hubble.Record
}

// NewServer returns a UI server for the flows of store. auth guards the API
// (nil: no authentication, for loopback only).
func NewServer(store *hubble.Store, auth *apiauth.Authenticator, opts Options, log logrus.FieldLogger) (*Server, error) {
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	if auth == nil {
		var err error
		if auth, err = apiauth.New(apiauth.Config{}); err != nil {
			return nil, err
		}
	}
	files, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	return &Server{store: store, graph: newGraph(), auth: auth, opts: opts, log: log, files: files, now: time.Now,
		following: make(chan struct{}, 1)}, nil
}

// Run keeps the map current while a page follows it: it folds the store's
// flows in batches. With no page open it folds nothing, and the flows wait
// in the store's ring; whatever asks for the map first folds what the ring
// holds (catchUp), so a page opened later shows the flows that arrived
// before it, as far back as the ring reaches. The map reads with its own
// cursor: when it falls behind a following page, the flows it missed are
// counted (shown on the page as missed), and the store is never held up.
func (s *Server) Run(ctx context.Context) error {
	for {
		if s.streams.Load() == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-s.following:
			}
			continue
		}
		s.foldMu.Lock()
		seq := s.next
		s.foldMu.Unlock()
		if err := s.store.Wait(ctx, seq); err != nil {
			return nil
		}
		s.catchUp()
		// The page is updated once a tick: taking the flows in batches
		// spares a wakeup per flow.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(foldInterval):
		}
	}
}

// catchUp folds the flows the map has not seen. Flows the ring overwrote
// meanwhile count as missed when a page follows the map, and as unwatched
// when none does.
func (s *Server) catchUp() {
	const chunk = 4096
	s.foldMu.Lock()
	defer s.foldMu.Unlock()
	following := s.streams.Load() > 0
	for {
		var lost uint64
		s.batch, s.next, lost = s.store.ReadRecords(s.batch[:0], s.next, chunk)
		if lost > 0 {
			s.graph.mu.Lock()
			if following {
				s.graph.missed += lost
			} else {
				s.graph.unwatched += lost
			}
			s.graph.mu.Unlock()
		}
		for _, r := range s.batch {
			s.graph.addRecord(r)
		}
		n := len(s.batch)
		clear(s.batch)
		if n < chunk {
			return
		}
	}
}

// foldInterval is how long the map lets flows gather before folding them.
const foldInterval = 50 * time.Millisecond

// contentSecurity keeps every request of the page on its own origin.
const contentSecurity = "default-src 'self'; script-src 'self'; worker-src 'self'; connect-src 'self'; " +
	"img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; font-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler returns the UI's routes: the page and its assets, and the
// read-only API under /api/ (authenticated when configured).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static := http.FileServerFS(s.files)
	mux.Handle("GET /", static)
	api := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, s.authenticated(h))
	}
	mux.HandleFunc("POST /api/login", s.login)
	api("GET /api/whoami", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, map[string]string{"mode": s.opts.Mode}) })
	api("GET /api/status", s.status)
	api("GET /api/map", s.mapJSON)
	api("GET /api/stream", s.stream)
	api("GET /api/flows", s.flows)
	api("GET /api/edge", s.edgeDetail)
	api("GET /api/workload", s.workloadDetail)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurity)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !(r.Method == http.MethodPost && r.URL.Path == "/api/login") {
			http.Error(w, "the UI is read-only", http.StatusMethodNotAllowed)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) authenticated(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.auth.Allowed(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
			http.Error(w, "sign in with the API token or a client certificate", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// login exchanges the token (form field "token") for a session cookie
// that holds a keyed hash of it, so the page's requests and its event
// stream are authenticated.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !s.auth.UsesToken() {
		http.Error(w, "this UI signs in with client certificates, not tokens", http.StatusBadRequest)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil || !s.auth.CheckToken(r.PostForm.Get("token")) {
		http.Error(w, "wrong token", http.StatusUnauthorized)
		return
	}
	v, err := s.auth.SessionValue()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: apiauth.SessionCookie, Value: v, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		// The client went away; nothing to tell it.
		return
	}
}

func badRequest(w http.ResponseWriter, err error) {
	http.Error(w, err.Error(), http.StatusBadRequest)
}

type statusView struct {
	Mode     string       `json:"mode"`
	Node     string       `json:"node,omitempty"`
	Nodes    []NodeStatus `json:"nodes,omitempty"`
	Held     int          `json:"held"`
	Capacity int          `json:"capacity"`
	Seen     uint64       `json:"seen"`
	Rate     float64      `json:"rate"`
	Lost     uint64       `json:"lost"`
	Missed   uint64       `json:"missed"`
	// Unwatched are flows the ring overwrote while no page followed the
	// map, before anything asked for it: not on the map.
	Unwatched uint64 `json:"unwatched"`
	// Streams are the pages following the map; Updates the live updates
	// sent to them.
	Streams int64  `json:"streams"`
	Updates uint64 `json:"updates"`
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := s.store.Stats()
	out := statusView{Mode: s.opts.Mode, Node: s.opts.NodeName, Held: st.Held, Capacity: st.Capacity, Seen: st.Seen,
		Rate: st.Rate, Lost: s.store.Lost(), Streams: s.streams.Load(), Updates: s.updates.Load()}
	s.graph.mu.RLock()
	out.Missed, out.Unwatched = s.graph.missed, s.graph.unwatched
	s.graph.mu.RUnlock()
	if s.opts.Nodes != nil {
		out.Nodes = s.opts.Nodes()
	}
	writeJSON(w, out)
}

func (s *Server) mapJSON(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		badRequest(w, err)
		return
	}
	s.catchUp()
	writeJSON(w, s.graph.view(f, s.now(), s.store.Lost()).sorted())
}

// heldFlows returns the store's flows that pass f and keep, newest first,
// at most limit.
func (s *Server) heldFlows(f *viewFilter, keep func(*facts) bool, limit int) []hubble.Record {
	oldest, next := s.store.Oldest()
	held, _, _ := s.store.ReadRecords(nil, oldest, int(next-oldest))
	now := s.now()
	var out []hubble.Record
	for i := len(held) - 1; i >= 0 && len(out) < limit; i-- {
		if !f.matchRecord(held[i], &s.graph.procs, now) {
			continue
		}
		if fa := factsOf(held[i], &s.graph.procs); keep == nil || keep(&fa) {
			out = append(out, held[i])
		}
	}
	return out
}

const maxRows = 5000

var csvHeader = []string{"time", "node", "source", "source_pod", "source_ip", "source_port", "destination", "destination_pod",
	"destination_ip", "destination_port", "protocol", "verdict", "drop_reason", "direction", "policies", "process", "pid",
	"arguments", "parent", "l7"}

// flows lists the held flows that pass the filter (and edge= or
// workload=), newest first, as JSON or, with format=csv, as CSV.
func (s *Server) flows(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := parseFilter(q)
	if err != nil {
		badRequest(w, err)
		return
	}
	limit := 500
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > maxRows {
			badRequest(w, fmt.Errorf("limit: %q is not a number from 1 to %d", l, maxRows))
			return
		}
	}
	keep, err := s.flowScope(q.Get("edge"), q.Get("workload"))
	if err != nil {
		badRequest(w, err)
		return
	}
	rows := make([]flowRow, 0)
	for _, fl := range s.heldFlows(f, keep, limit) {
		rows = append(rows, rowOf(fl.Flow(), &s.graph.procs))
	}
	switch q.Get("format") {
	case "", "json":
		writeJSON(w, rows)
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="vigil-flows.csv"`)
		cw := csv.NewWriter(w)
		cw.Write(csvHeader)
		for _, r := range rows {
			cw.Write([]string{r.Time.Format(time.RFC3339Nano), r.Node, r.Source, r.SourcePod, r.SourceIP, u32(r.SourcePort),
				r.Destination, r.DestinationPod, r.DestinationIP, u32(r.DestinationPort), r.Protocol, r.Verdict, r.DropReason,
				r.Direction, strings.Join(r.Policies, "; "), r.Process, u32(r.PID), r.Arguments, r.Parent, r.L7})
		}
		cw.Flush()
	default:
		badRequest(w, fmt.Errorf("format: %q is not json or csv", q.Get("format")))
	}
}

func u32(n uint32) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(n), 10)
}

// flowScope narrows flows to one edge or one workload (by their ids).
func (s *Server) flowScope(edgeID, workID string) (func(*facts) bool, error) {
	switch {
	case edgeID != "" && workID != "":
		return nil, errors.New("edge and workload: give one or the other")
	case edgeID != "":
		return func(fa *facts) bool { return fa.edge().id() == edgeID }, nil
	case workID != "":
		return func(fa *facts) bool { return fa.src.key.id() == workID || fa.dst.key.id() == workID }, nil
	}
	return nil, nil
}

func flowEdge(f *flowpb.Flow) ekey {
	proto, port := l4Of(f)
	return ekey{endpointKey(f.GetSource(), f.GetIP().GetSource()), endpointKey(f.GetDestination(), f.GetIP().GetDestination()), proto, port}
}

type edgeDetail struct {
	Edge  edgeView  `json:"edge"`
	Flows []flowRow `json:"flows"`
}

func (s *Server) edgeDetail(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := parseFilter(q)
	if err != nil {
		badRequest(w, err)
		return
	}
	id := q.Get("id")
	var out *edgeDetail
	var kept []hubble.Record
	s.catchUp()
	s.graph.mu.RLock()
	for _, e := range s.graph.edges {
		if e.key.id() == id {
			out = &edgeDetail{Edge: e.view(e.windowCounts(s.now(), f.windowDur))}
			kept = e.recentFlows()
			break
		}
	}
	s.graph.mu.RUnlock()
	if out == nil {
		http.Error(w, fmt.Sprintf("id: no edge %q on the map", id), http.StatusNotFound)
		return
	}
	keep, _ := s.flowScope(id, "")
	flows := s.heldFlows(f, keep, 50)
	for _, r := range kept {
		held := slices.ContainsFunc(flows, func(h hubble.Record) bool { return sameRecord(h, r) })
		if fa := factsOf(r, &s.graph.procs); !held && f.match(&fa, s.now()) {
			flows = append(flows, r)
		}
	}
	slices.SortFunc(flows, func(a, b hubble.Record) int { return recordTime(b).Compare(recordTime(a)) })
	out.Flows = make([]flowRow, 0, len(flows))
	for _, r := range flows {
		out.Flows = append(out.Flows, rowOf(r.Flow(), &s.graph.procs))
	}
	writeJSON(w, out)
}

type podView struct {
	Name string    `json:"name"`
	Node string    `json:"node,omitempty"`
	Last time.Time `json:"last"`
}

// procNode is a process of a workload, with the children seen in its
// flows.
type procNode struct {
	ExecID    string      `json:"exec_id"`
	PID       uint32      `json:"pid"`
	Binary    string      `json:"binary"`
	Arguments string      `json:"arguments,omitempty"`
	Pod       string      `json:"pod,omitempty"`
	Flows     int         `json:"flows"`
	Children  []*procNode `json:"children,omitempty"`
	parent    string
}

type workloadDetail struct {
	Workload  nodeView    `json:"workload"`
	Pods      []podView   `json:"pods"`
	Policies  []string    `json:"policies"`
	Edges     []edgeView  `json:"edges"`
	Flows     []flowRow   `json:"flows"`
	Processes []*procNode `json:"processes"`
}

func (s *Server) workloadDetail(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := parseFilter(q)
	if err != nil {
		badRequest(w, err)
		return
	}
	id := q.Get("id")
	now := s.now()
	var out *workloadDetail
	s.catchUp()
	s.graph.mu.RLock()
	for k, wl := range s.graph.works {
		if k.id() != id {
			continue
		}
		out = &workloadDetail{Workload: wl.view(), Pods: []podView{}, Policies: []string{}, Edges: []edgeView{}}
		for name, p := range wl.pods {
			out.Pods = append(out.Pods, podView{Name: name, Node: p.node, Last: p.last})
		}
		for p := range wl.policies {
			out.Policies = append(out.Policies, p.String())
		}
		for ek, e := range s.graph.edges {
			if ek.src == k || ek.dst == k {
				if c := e.windowCounts(now, f.windowDur); c.fwd+c.drop+c.audit > 0 {
					out.Edges = append(out.Edges, e.view(c))
				}
			}
		}
		break
	}
	s.graph.mu.RUnlock()
	if out == nil {
		http.Error(w, fmt.Sprintf("id: no workload %q on the map", id), http.StatusNotFound)
		return
	}
	sort.Slice(out.Pods, func(i, j int) bool { return out.Pods[i].Name < out.Pods[j].Name })
	sort.Strings(out.Policies)
	slices.SortFunc(out.Edges, func(a, b edgeView) int { return strings.Compare(a.ID, b.ID) })

	keep, _ := s.flowScope("", id)
	held := s.heldFlows(f, keep, 200)
	flows := make([]*flowpb.Flow, len(held))
	for i, r := range held {
		flows[i] = r.Flow()
	}
	out.Flows = make([]flowRow, 0, min(len(flows), 50))
	for i, fl := range flows {
		if i < 50 {
			out.Flows = append(out.Flows, rowOf(fl, &s.graph.procs))
		}
	}
	out.Processes = s.processTree(id, flows)
	writeJSON(w, out)
}

// processTree builds the tree of the workload's own processes seen in its
// flows: the owner of the local socket is the source's on egress, the
// destination's on ingress.
func (s *Server) processTree(id string, flows []*flowpb.Flow) []*procNode {
	nodes := map[string]*procNode{}
	var order []string
	get := func(p *hubble.Process) *procNode {
		n := nodes[p.ExecID]
		if n == nil {
			n = &procNode{ExecID: p.ExecID, PID: p.PID, Binary: p.Binary, Arguments: p.Arguments, Pod: p.PodName, parent: p.ParentExecID}
			nodes[p.ExecID] = n
			order = append(order, p.ExecID)
		}
		return n
	}
	for _, f := range flows {
		k := flowEdge(f)
		local := k.src
		if f.GetTrafficDirection() == flowpb.TrafficDirection_INGRESS {
			local = k.dst
		}
		if local.id() != id {
			continue
		}
		p, parent := s.graph.procs.ProcessOf(f)
		if p == nil {
			continue
		}
		get(p).Flows++
		if parent != nil {
			get(parent)
		}
	}
	sort.Strings(order)
	var roots []*procNode
	for _, eid := range order {
		n := nodes[eid]
		if par := nodes[n.parent]; par != nil && par != n {
			par.Children = append(par.Children, n)
		} else {
			roots = append(roots, n)
		}
	}
	if roots == nil {
		roots = []*procNode{}
	}
	return roots
}

// Serve serves h on lis until ctx ends, then shuts down (at most two
// seconds for open requests; event streams end with the context).
func Serve(ctx context.Context, lis net.Listener, h http.Handler, log logrus.FieldLogger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.WithError(err).Debug("ui shutdown")
			srv.Close()
		}
	}()
	err := srv.Serve(lis)
	close(done)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
