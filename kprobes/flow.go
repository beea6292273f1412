package kprobes

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// OpFlow is the opcode of flow records.
const OpFlow = uint8(ProcessVigilOpVIGIL_OP_FLOW)

// FlowReport says which moments of a connection are reported.
type FlowReport uint32

const (
	FlowReportOff      = FlowReport(FlowFlowReportFLOW_REPORT_OFF)
	FlowReportStart    = FlowReport(FlowFlowReportFLOW_REPORT_START)
	FlowReportStartEnd = FlowReport(FlowFlowReportFLOW_REPORT_START_END)
)

// ParseFlowReport parses off, start or start-end.
func ParseFlowReport(s string) (FlowReport, error) {
	switch s {
	case "off":
		return FlowReportOff, nil
	case "start":
		return FlowReportStart, nil
	case "start-end":
		return FlowReportStartEnd, nil
	}
	return 0, fmt.Errorf("%q: want off, start or start-end", s)
}

// FlowSensor reports TCP connections and UDP exchanges with the process
// that owns the local socket, into the process sensor's ring buffer.
type FlowSensor struct {
	coll  *ebpf.Collection
	links []link.Link
}

// NewFlowSensor loads the flow programs and attaches them: the
// sock:inet_sock_set_state tracepoint for TCP, and the cgroup socket-address
// hooks at cgroupRoot for UDP (alongside any other program there).
func NewFlowSensor(proc *ProcessSensor, cgroupRoot string, report FlowReport) (_ *FlowSensor, err error) {
	spec, err := LoadFlow()
	if err != nil {
		return nil, fmt.Errorf("load flow object: %w", err)
	}
	if err := spec.Variables["agent_tgid"].Set(uint32(os.Getpid())); err != nil {
		return nil, err
	}
	repl := map[string]*ebpf.Map{}
	for _, name := range []string{"events", "lost_counters"} {
		m := proc.coll.Maps[name]
		repl[name] = m
		spec.Maps[name].MaxEntries = m.MaxEntries()
	}
	attachTypes := map[string]ebpf.AttachType{}
	for name, ps := range spec.Programs {
		attachTypes[name] = ps.AttachType
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return nil, fmt.Errorf("load flow programs: %w", verifierHint(err))
	}
	s := &FlowSensor{coll: coll}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.SetReport(report); err != nil {
		return nil, err
	}
	l, err := link.Tracepoint("sock", "inet_sock_set_state", coll.Programs["flow_tcp_state"], nil)
	if err != nil {
		return nil, fmt.Errorf("attach sock/inet_sock_set_state: %w", err)
	}
	s.links = append(s.links, l)
	if cgroupRoot == "" {
		return nil, errors.New("flows: no cgroup v2 hierarchy is mounted (UDP flows need the cgroup socket hooks)")
	}
	for name, prog := range coll.Programs {
		if !strings.HasPrefix(name, "flow_udp_") {
			continue
		}
		l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroupRoot, Attach: attachTypes[name], Program: prog})
		if err != nil {
			return nil, fmt.Errorf("attach %s at %s: %w", name, cgroupRoot, err)
		}
		s.links = append(s.links, l)
	}
	return s, nil
}

// SetReport changes what is reported, live.
func (s *FlowSensor) SetReport(r FlowReport) error {
	if err := s.coll.Maps["flow_report_mode"].Put(uint32(0), uint32(r)); err != nil {
		return fmt.Errorf("set flow report mode: %w", err)
	}
	return nil
}

// Close detaches and unloads the flow programs.
func (s *FlowSensor) Close() error {
	var errs []error
	for _, l := range s.links {
		errs = append(errs, l.Close())
	}
	s.links = nil
	if s.coll != nil {
		s.coll.Close()
		s.coll = nil
	}
	return errors.Join(errs...)
}
