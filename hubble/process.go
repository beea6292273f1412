package hubble

import (
	"sync"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/vigilsec/vigil/event"
)

// Process is the process that owns a flow's local socket, as carried in the
// flow's extensions: a google.protobuf.Struct with the keys "process" and
// "parent", each an object with Tetragon's field names (exec_id, pid, uid,
// binary, arguments, start_time, parent_exec_id; pod {namespace, name}).
type Process struct {
	ExecID       string    `json:"exec_id"`
	ParentExecID string    `json:"parent_exec_id,omitempty"`
	PID          uint32    `json:"pid"`
	UID          uint32    `json:"uid"`
	Binary       string    `json:"binary"`
	Arguments    string    `json:"arguments,omitempty"`
	StartTime    time.Time `json:"start_time"`
	PodNamespace string    `json:"pod_namespace,omitempty"`
	PodName      string    `json:"pod_name,omitempty"`
}

// processExt is one process extension and the values it was built from.
type processExt struct {
	any             *anypb.Any
	process, parent *Process
}

func newProcessExt(p, parent *event.Process, redact func(string) string) *processExt {
	x := &processExt{process: fromEvent(p, redact)}
	fields := map[string]*structpb.Value{"process": structpb.NewStructValue(x.process.toStruct())}
	if parent != nil {
		x.parent = fromEvent(parent, redact)
		fields["parent"] = structpb.NewStructValue(x.parent.toStruct())
	}
	a, err := anypb.New(&structpb.Struct{Fields: fields})
	if err != nil {
		// A Struct of strings and numbers always marshals.
		panic(err)
	}
	x.any = a
	return x
}

func fromEvent(p *event.Process, redact func(string) string) *Process {
	out := &Process{ExecID: p.ExecID, ParentExecID: p.ParentExecID, PID: p.PID, UID: p.UID, Binary: p.Binary,
		Arguments: p.Arguments, StartTime: p.StartTime.UTC()}
	if redact != nil && out.Arguments != "" {
		out.Arguments = redact(out.Arguments)
	}
	if p.Pod != nil {
		out.PodNamespace, out.PodName = p.Pod.Namespace, p.Pod.Name
	}
	return out
}

func (p *Process) toStruct() *structpb.Struct {
	f := map[string]*structpb.Value{
		"exec_id":    structpb.NewStringValue(p.ExecID),
		"pid":        structpb.NewNumberValue(float64(p.PID)),
		"uid":        structpb.NewNumberValue(float64(p.UID)),
		"binary":     structpb.NewStringValue(p.Binary),
		"start_time": structpb.NewStringValue(p.StartTime.Format(time.RFC3339Nano)),
	}
	if p.ParentExecID != "" {
		f["parent_exec_id"] = structpb.NewStringValue(p.ParentExecID)
	}
	if p.Arguments != "" {
		f["arguments"] = structpb.NewStringValue(p.Arguments)
	}
	if p.PodName != "" {
		f["pod"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"namespace": structpb.NewStringValue(p.PodNamespace),
			"name":      structpb.NewStringValue(p.PodName),
		}})
	}
	return &structpb.Struct{Fields: f}
}

func processFromStruct(s *structpb.Struct) *Process {
	if s == nil {
		return nil
	}
	f := s.GetFields()
	p := &Process{
		ExecID: f["exec_id"].GetStringValue(), ParentExecID: f["parent_exec_id"].GetStringValue(),
		PID: uint32(f["pid"].GetNumberValue()), UID: uint32(f["uid"].GetNumberValue()),
		Binary: f["binary"].GetStringValue(), Arguments: f["arguments"].GetStringValue(),
	}
	p.StartTime, _ = time.Parse(time.RFC3339Nano, f["start_time"].GetStringValue())
	if pod := f["pod"].GetStructValue(); pod != nil {
		p.PodNamespace = pod.GetFields()["namespace"].GetStringValue()
		p.PodName = pod.GetFields()["name"].GetStringValue()
	}
	return p
}

// ProcessDecoder reads the processes of flows' extensions, keeping the
// ones it decoded by extension so that the flows of one process (which
// share their extension in the agent) are decoded once. Safe for
// concurrent use.
type ProcessDecoder struct {
	mu    sync.Mutex
	cache map[*anypb.Any][2]*Process
}

// ProcessOf returns the process and parent of f, or nils when f carries no
// process.
func (d *ProcessDecoder) ProcessOf(f *flowpb.Flow) (process, parent *Process) {
	a := f.GetExtensions()
	if a == nil {
		return nil, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if v, ok := d.cache[a]; ok {
		return v[0], v[1]
	}
	if d.cache == nil || len(d.cache) >= maxCachedProcs {
		d.cache = map[*anypb.Any][2]*Process{}
	}
	var s structpb.Struct
	if a.MessageIs(&s) && a.UnmarshalTo(&s) == nil {
		process = processFromStruct(s.GetFields()["process"].GetStructValue())
		parent = processFromStruct(s.GetFields()["parent"].GetStructValue())
	}
	d.cache[a] = [2]*Process{process, parent}
	return process, parent
}
