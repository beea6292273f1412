package flows

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/process"
)

// Report says which moments of a connection are reported.
type Report uint32

const (
	ReportOff      = Report(abi.FlowFlowReportFLOW_REPORT_OFF)
	ReportStart    = Report(abi.FlowFlowReportFLOW_REPORT_START)
	ReportStartEnd = Report(abi.FlowFlowReportFLOW_REPORT_START_END)
)

// ParseReport parses off, start or start-end.
func ParseReport(s string) (Report, error) {
	switch s {
	case "off":
		return ReportOff, nil
	case "start":
		return ReportStart, nil
	case "start-end":
		return ReportStartEnd, nil
	}
	return 0, fmt.Errorf("%q: want off, start or start-end", s)
}

// Sensor reports TCP connections and UDP exchanges with the process
// that owns the local socket, into the process sensor's ring buffer.
type Sensor struct {
	coll  *ebpf.Collection
	links []link.Link
}

// NewSensor loads the flow programs and attaches them: the
// sock:inet_sock_set_state tracepoint for TCP, and the cgroup socket-address
// hooks at cgroupRoot for UDP (alongside any other program there).
//
// TCP is followed with tp_btf where the kernel has it (the tracepoint's
// arguments without a perf record built for each state change) and with the
// tracepoint otherwise.
func NewSensor(proc *process.Sensor, cgroupRoot string, report Report, f *kprobes.Features) (_ *Sensor, err error) {
	spec, err := abi.LoadFlow()
	if err != nil {
		return nil, fmt.Errorf("load flow object: %w", err)
	}
	if err := spec.Variables[abi.FlowVarAgentTgid].Set(uint32(os.Getpid())); err != nil {
		return nil, err
	}
	repl := map[string]*ebpf.Map{}
	for name, m := range proc.SharedMaps() {
		if ms := spec.Maps[name]; ms != nil {
			repl[name] = m
			ms.MaxEntries = m.MaxEntries()
		}
	}
	tcpProg, unused := abi.FlowProgFlowTcpStateBtf, abi.FlowProgFlowTcpState
	if f != nil && !f.Has(kprobes.FeatureTpBTF) {
		tcpProg, unused = unused, tcpProg
	}
	delete(spec.Programs, unused)
	attachTypes := map[string]ebpf.AttachType{}
	for name, ps := range spec.Programs {
		attachTypes[name] = ps.AttachType
	}
	coll, err := kprobes.LoadCollection(spec, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return nil, fmt.Errorf("load flow programs: %w", kprobes.VerifierHint(err))
	}
	s := &Sensor{coll: coll}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.SetReport(report); err != nil {
		return nil, err
	}
	var l link.Link
	if tcpProg == abi.FlowProgFlowTcpStateBtf {
		l, err = link.AttachTracing(link.TracingOptions{Program: coll.Programs[tcpProg]})
	} else {
		l, err = link.Tracepoint("sock", "inet_sock_set_state", coll.Programs[tcpProg], nil)
	}
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
func (s *Sensor) SetReport(r Report) error {
	if err := s.coll.Maps[abi.FlowMapFlowReportMode].Put(uint32(0), uint32(r)); err != nil {
		return fmt.Errorf("set flow report mode: %w", err)
	}
	return nil
}

// Close detaches and unloads the flow programs.
func (s *Sensor) Close() error {
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
