package rules

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/encode"
)

// eventDecoder turns exported JSON lines back into the events they were
// encoded from, for the tests of the typed input on recorded events. It
// reads what the recorded events hold (execs, policy events with integer,
// string and file arguments, flows) and shares process and pod values
// between events as the process cache does: the same object's text gives
// the same pointer. TestRecordedEventsDecode checks that each decoded
// event encodes back to its line.
type eventDecoder struct {
	procs map[string]*event.Process
	pods  map[string]*event.Pod
}

func newEventDecoder() *eventDecoder {
	return &eventDecoder{procs: map[string]*event.Process{}, pods: map[string]*event.Pod{}}
}

// decodeLine returns the event and the node name of one exported line.
func (d *eventDecoder) decodeLine(line []byte) (*event.Event, string, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(line, &top); err != nil {
		return nil, "", err
	}
	var node, at string
	if err := json.Unmarshal(top["node_name"], &node); err != nil {
		return nil, "", fmt.Errorf("node_name: %w", err)
	}
	if err := json.Unmarshal(top["time"], &at); err != nil {
		return nil, "", fmt.Errorf("time: %w", err)
	}
	ev := &event.Event{}
	var err error
	if ev.Time, err = time.Parse(time.RFC3339Nano, at); err != nil {
		return nil, "", err
	}
	for k, raw := range top {
		if k == "node_name" || k == "time" {
			continue
		}
		t, ok := event.ParseType(k)
		if !ok {
			return nil, "", fmt.Errorf("unknown event key %q", k)
		}
		ev.Type = t
		if err := d.body(ev, raw); err != nil {
			return nil, "", fmt.Errorf("%s: %w", k, err)
		}
	}
	return ev, node, nil
}

func (d *eventDecoder) body(ev *event.Event, raw json.RawMessage) error {
	var b struct {
		Process      json.RawMessage `json:"process"`
		Parent       json.RawMessage `json:"parent"`
		FunctionName string          `json:"function_name"`
		Args         []jsonArg       `json:"args"`
		Action       string          `json:"action"`
		PolicyName   string          `json:"policy_name"`
		Message      string          `json:"message"`
		Tags         []string        `json:"tags"`
		Mechanism    string          `json:"mechanism"`
		// flows
		Verdict   string `json:"verdict"`
		Direction string `json:"traffic_direction"`
		IsReply   bool   `json:"is_reply"`
		Phase     string `json:"phase"`
		IP        struct {
			Source      string `json:"source"`
			Destination string `json:"destination"`
		} `json:"IP"`
		L4 struct {
			TCP *struct {
				SourcePort      uint16          `json:"source_port"`
				DestinationPort uint16          `json:"destination_port"`
				Flags           map[string]bool `json:"flags"`
			} `json:"TCP"`
		} `json:"l4"`
		Source      jsonEndpoint `json:"source"`
		Destination jsonEndpoint `json:"destination"`
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&b); err != nil {
		return err
	}
	var err error
	if ev.Process, err = d.process(b.Process); err != nil {
		return err
	}
	if ev.Parent, err = d.process(b.Parent); err != nil {
		return err
	}
	switch ev.Type {
	case event.TypeProcessKprobe:
		k := &event.Kprobe{FunctionName: b.FunctionName, Action: b.Action, PolicyName: b.PolicyName,
			Message: b.Message, Tags: b.Tags, Mechanism: b.Mechanism}
		for _, a := range b.Args {
			arg, err := a.arg()
			if err != nil {
				return err
			}
			k.Args = append(k.Args, arg)
		}
		ev.Kprobe = k
	case event.TypeFlow:
		f := &event.Flow{IsReply: b.IsReply, SourceEndpoint: b.Source.endpoint(), DestEndpoint: b.Destination.endpoint()}
		for _, v := range []event.Verdict{event.VerdictForwarded, event.VerdictDropped, event.VerdictAudit} {
			if v.String() == b.Verdict {
				f.Verdict = v
			}
		}
		for _, dir := range []event.Direction{event.DirectionIngress, event.DirectionEgress} {
			if dir.String() == b.Direction {
				f.Direction = dir
			}
		}
		for p := event.FlowStart; p <= event.FlowPacket; p++ {
			if encode.FlowPhaseText(p) == b.Phase {
				f.Phase = p
			}
		}
		f.Source, _ = netip.ParseAddr(b.IP.Source)
		f.Destination, _ = netip.ParseAddr(b.IP.Destination)
		if tcp := b.L4.TCP; tcp != nil {
			f.Protocol, f.SourcePort, f.DestinationPort = event.ProtoTCP, tcp.SourcePort, tcp.DestinationPort
			for fl := event.TCPFlags(1); fl != 0; fl <<= 1 {
				if n := encode.TCPFlagNames(nil, fl); len(n) == 1 && tcp.Flags[n[0]] {
					f.TCPFlags |= fl
				}
			}
		}
		ev.Flow = f
	}
	return nil
}

type jsonEndpoint struct {
	Identity  uint32   `json:"identity"`
	Namespace string   `json:"namespace"`
	Labels    []string `json:"labels"`
	PodName   string   `json:"pod_name"`
	Workloads []struct {
		Name string `json:"name"`
		Kind string `json:"kind"`
	} `json:"workloads"`
}

func (e jsonEndpoint) endpoint() event.Endpoint {
	ep := event.Endpoint{Identity: e.Identity, Namespace: e.Namespace, Labels: e.Labels, PodName: e.PodName}
	for _, w := range e.Workloads {
		ep.Workloads = append(ep.Workloads, event.Workload{Name: w.Name, Kind: w.Kind})
	}
	return ep
}

type jsonArg struct {
	Int     *int64  `json:"int_arg"`
	Long    *int64  `json:"long_arg,string"`
	Uint    *uint64 `json:"uint_arg"`
	Size    *uint64 `json:"size_arg,string"`
	String  *string `json:"string_arg"`
	FileArg *struct {
		Path  string `json:"path"`
		Flags string `json:"open_flags"`
	} `json:"file_arg"`
	Label     string `json:"label"`
	Truncated bool   `json:"truncated"`
}

func (a jsonArg) arg() (event.Arg, error) {
	arg := event.Arg{Label: a.Label, Truncated: a.Truncated}
	switch {
	case a.Int != nil:
		arg.Kind, arg.Int = event.ArgInt, *a.Int
	case a.Long != nil:
		arg.Kind, arg.Int = event.ArgLong, *a.Long
	case a.Uint != nil:
		arg.Kind, arg.Uint = event.ArgUint, *a.Uint
	case a.Size != nil:
		arg.Kind, arg.Uint = event.ArgSize, *a.Size
	case a.String != nil:
		arg.Kind, arg.Str = event.ArgString, unbytes(*a.String)
	case a.FileArg != nil:
		flags, err := openFlags(a.FileArg.Flags)
		if err != nil {
			return arg, err
		}
		arg.Kind, arg.Str, arg.Flags = event.ArgFile, unbytes(a.FileArg.Path), flags
	default:
		return arg, fmt.Errorf("argument %+v: a kind the recorded events do not have", a)
	}
	return arg, nil
}

// openFlags reads "O_RDONLY|O_CLOEXEC" back into flags, with the names
// the encoder gives each bit.
func openFlags(s string) (uint32, error) {
	parts := strings.Split(s, "|")
	var f uint32
	switch parts[0] {
	case "O_RDONLY":
	case "O_WRONLY":
		f = 1
	case "O_RDWR":
		f = 2
	case "O_ACCMODE":
		f = 3
	default:
		return 0, fmt.Errorf("open flags %q", s)
	}
	for _, p := range parts[1:] {
		if hex, ok := strings.CutPrefix(p, "0x"); ok {
			n, err := strconv.ParseUint(hex, 16, 32)
			if err != nil {
				return 0, err
			}
			f |= uint32(n)
			continue
		}
		found := false
		for b := 2; b < 32; b++ {
			if encode.OpenFlagsText(1<<b) == "O_RDONLY|"+p {
				f |= 1 << b
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("open flag %q", p)
		}
	}
	return f, nil
}

type jsonProcess struct {
	ExecID    string `json:"exec_id"`
	PID       uint32 `json:"pid"`
	TID       uint32 `json:"tid"`
	UID       uint32 `json:"uid"`
	AUID      uint32 `json:"auid"`
	CWD       string `json:"cwd"`
	Binary    string `json:"binary"`
	Arguments string `json:"arguments"`
	Argv0     string `json:"argv0"`
	Env       []struct {
		Key   string `json:"Key"`
		Value string `json:"Value"`
	} `json:"environment_variables"`
	Flags        string `json:"flags"`
	StartTime    string `json:"start_time"`
	ParentExecID string `json:"parent_exec_id"`
	Cap          struct {
		Permitted   []string `json:"permitted"`
		Effective   []string `json:"effective"`
		Inheritable []string `json:"inheritable"`
	} `json:"cap"`
	NS map[string]struct {
		Inum   uint32 `json:"inum"`
		IsHost bool   `json:"is_host"`
	} `json:"ns"`
	Creds struct {
		UID   uint32 `json:"uid"`
		GID   uint32 `json:"gid"`
		EUID  uint32 `json:"euid"`
		EGID  uint32 `json:"egid"`
		SUID  uint32 `json:"suid"`
		SGID  uint32 `json:"sgid"`
		FSUID uint32 `json:"fsuid"`
		FSGID uint32 `json:"fsgid"`
	} `json:"process_credentials"`
	BinaryProperties struct {
		Setuid *uint32 `json:"setuid"`
		Setgid *uint32 `json:"setgid"`
		File   struct {
			Inode struct {
				Number string `json:"number"`
				Links  uint32 `json:"links"`
			} `json:"inode"`
		} `json:"file"`
		PrivilegesChanged []string `json:"privileges_changed"`
		UpperLayer        bool     `json:"upper_layer"`
		Memfd             bool     `json:"memfd"`
		Deleted           bool     `json:"deleted"`
	} `json:"binary_properties"`
	CgroupID uint64          `json:"cgroup_id"`
	Pod      json.RawMessage `json:"pod"`
}

func (d *eventDecoder) process(raw json.RawMessage) (*event.Process, error) {
	if raw == nil {
		return nil, nil
	}
	if p := d.procs[string(raw)]; p != nil {
		return p, nil
	}
	var j jsonProcess
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, err
	}
	p := &event.Process{ExecID: j.ExecID, ParentExecID: j.ParentExecID, PID: j.PID, TID: j.TID, UID: j.UID,
		AUID: j.AUID, CWD: unbytes(j.CWD), Binary: unbytes(j.Binary), Arguments: j.Arguments, CgroupID: j.CgroupID,
		Creds: event.Credentials{UID: j.Creds.UID, GID: j.Creds.GID, EUID: j.Creds.EUID, EGID: j.Creds.EGID,
			SUID: j.Creds.SUID, SGID: j.Creds.SGID, FSUID: j.Creds.FSUID, FSGID: j.Creds.FSGID}}
	for _, name := range strings.Fields(j.Flags) {
		found := false
		for b := 0; b < 32; b++ {
			if event.Flags(1<<b).String() == name {
				p.Flags |= 1 << b
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("process flag %q", name)
		}
	}
	p.Argv0 = unbytes(j.Argv0)
	for _, v := range j.Env {
		p.Env = append(p.Env, event.EnvVar{Key: unbytes(v.Key), Value: unbytes(v.Value)})
	}
	if j.StartTime != "" {
		t, err := time.Parse(time.RFC3339Nano, j.StartTime)
		if err != nil {
			return nil, err
		}
		p.StartTime = t
	}
	var err error
	for _, c := range []struct {
		names []string
		mask  *uint64
	}{{j.Cap.Permitted, &p.CapPermitted}, {j.Cap.Effective, &p.CapEffective}, {j.Cap.Inheritable, &p.CapInheritable}} {
		if *c.mask, err = capMask(c.names); err != nil {
			return nil, err
		}
	}
	ns := &p.Namespaces
	ns.PidInum, ns.PidIsHost = j.NS["pid"].Inum, j.NS["pid"].IsHost
	ns.MntInum, ns.MntIsHost = j.NS["mnt"].Inum, j.NS["mnt"].IsHost
	ns.NetInum, ns.NetIsHost = j.NS["net"].Inum, j.NS["net"].IsHost
	bp := j.BinaryProperties
	p.BinaryProperties = event.BinaryProperties{Setuid: bp.Setuid, Setgid: bp.Setgid, InodeLinks: bp.File.Inode.Links,
		UpperLayer: bp.UpperLayer, Memfd: bp.Memfd, Deleted: bp.Deleted}
	for _, name := range bp.PrivilegesChanged {
		found := false
		for b := 0; b < 8; b++ {
			if c := event.PrivilegeChanges(1 << b); len(c.Names()) == 1 && c.Names()[0] == name {
				p.BinaryProperties.PrivilegesChanged |= c
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("privileges_changed %q", name)
		}
	}
	if n := bp.File.Inode.Number; n != "" {
		if p.BinaryProperties.InodeNumber, err = strconv.ParseUint(n, 10, 64); err != nil {
			return nil, err
		}
	}
	if p.Pod, err = d.pod(j.Pod); err != nil {
		return nil, err
	}
	d.procs[string(raw)] = p
	return p, nil
}

func capMask(names []string) (uint64, error) {
	var m uint64
	for _, n := range names {
		found := false
		for b := 0; b < 64; b++ {
			if encode.CapName(b) == n {
				m |= 1 << b
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("capability %q", n)
		}
	}
	return m, nil
}

func (d *eventDecoder) pod(raw json.RawMessage) (*event.Pod, error) {
	if raw == nil {
		return nil, nil
	}
	if p := d.pods[string(raw)]; p != nil {
		return p, nil
	}
	var j struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		UID       string `json:"uid"`
		Container *struct {
			ID    string `json:"id"`
			Name  string `json:"name"`
			Image struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"image"`
			StartTime string `json:"start_time"`
		} `json:"container"`
		Labels       json.RawMessage `json:"pod_labels"`
		Workload     string          `json:"workload"`
		WorkloadKind string          `json:"workload_kind"`
	}
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, err
	}
	p := &event.Pod{Namespace: j.Namespace, Name: j.Name, UID: j.UID, Workload: j.Workload, WorkloadKind: j.WorkloadKind}
	if c := j.Container; c != nil {
		p.Container = event.Container{ID: c.ID, Name: c.Name, ImageID: c.Image.ID, ImageName: c.Image.Name}
		if c.StartTime != "" {
			t, err := time.Parse(time.RFC3339Nano, c.StartTime)
			if err != nil {
				return nil, err
			}
			p.Container.StartTime = t
		}
	}
	if j.Labels != nil {
		// In the order written (sorted by key).
		dec := json.NewDecoder(strings.NewReader(string(j.Labels)))
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			var v string
			if err := dec.Decode(&v); err != nil {
				return nil, err
			}
			p.Labels = append(p.Labels, event.Label{Key: k.(string), Value: v})
		}
	}
	d.pods[string(raw)] = p
	return p, nil
}

// unbytes undoes encode.AppendBytes: a value without a backslash is the
// bytes themselves; otherwise \\ is a backslash and \xNN a byte.
func unbytes(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] != '\\':
			b.WriteByte(s[i])
		case i+1 < len(s) && s[i+1] == '\\':
			b.WriteByte('\\')
			i++
		case i+3 < len(s) && s[i+1] == 'x':
			n, _ := strconv.ParseUint(s[i+2:i+4], 16, 8)
			b.WriteByte(byte(n))
			i += 3
		}
	}
	return b.String()
}

// recordedEvents decodes lines into events.
func recordedEvents(tb testing.TB, lines [][]byte) (evs []*event.Event, nodes []string) {
	tb.Helper()
	d := newEventDecoder()
	for _, l := range lines {
		ev, node, err := d.decodeLine(l)
		if err != nil {
			tb.Fatalf("%v: %s", err, l)
		}
		evs, nodes = append(evs, ev), append(nodes, node)
	}
	return evs, nodes
}

// The decoded events are the recorded ones: each encodes back to the
// line it was read from.
func TestRecordedEventsDecode(t *testing.T) {
	for _, lines := range [][][]byte{recorded(t), ordinary(t)} {
		evs, nodes := recordedEvents(t, lines)
		for i, ev := range evs {
			got := encode.AppendJSON(nil, ev, nodes[i], nil)
			want, _, err := ParseInput(lines[i])
			if err != nil {
				t.Fatal(err)
			}
			back, _, err := ParseInput(got)
			if err != nil {
				t.Fatal(err)
			}
			if back.Compare(want) != 0 {
				t.Errorf("decoded event encodes as\n%s\nnot\n%s", got, lines[i])
			}
		}
	}
}
