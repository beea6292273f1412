package filter

import (
	"net/netip"
	"time"

	"github.com/vigilsec/vigil/event"
)

// session is a short, realistic stream: an operator runs kubectl exec into
// a web pod, reads a secret file, a database client connects out, a host
// daemon restarts and a rule raises an alert.
func session() map[string]*event.Event {
	t0 := time.Date(2026, 11, 22, 7, 18, 21, 0, time.UTC)
	web := &event.Pod{Namespace: "shop", Name: "web-7c9f8d-x2x4q", Workload: "web", WorkloadKind: "Deployment",
		Labels:    []event.Label{{Key: "app", Value: "web"}, {Key: "replicas", Value: "3"}, {Key: "tier", Value: "frontend"}},
		Container: event.Container{ID: "containerd://3f1e2d4c5b6a7988", Name: "nginx"}}
	db := &event.Pod{Namespace: "db", Name: "postgres-0", Workload: "postgres", WorkloadKind: "StatefulSet",
		Labels:    []event.Label{{Key: "app", Value: "postgres"}, {Key: "tier", Value: "db"}},
		Container: event.Container{ID: "containerd://aa11bb22cc33", Name: "postgres"}}
	runc := &event.Process{ExecID: "runc", PID: 900, Binary: "/usr/bin/runc", Arguments: "init"}
	sh := &event.Process{ExecID: "sh", ParentExecID: "runc", PID: 1001, Binary: "/bin/sh", Pod: web}
	cat := &event.Process{ExecID: "cat", ParentExecID: "sh", PID: 1002, Binary: "/bin/cat", Arguments: "/etc/shadow", Pod: web}
	psql := &event.Process{ExecID: "psql", ParentExecID: "sh", PID: 1003, Binary: "/usr/bin/psql",
		Arguments: "-h postgres.db --password=hunter2 -U app", Pod: web}
	postgres := &event.Process{ExecID: "pg", PID: 50, Binary: "/usr/lib/postgresql/16/bin/postgres", Pod: db}
	systemd := &event.Process{ExecID: "init", PID: 1, Binary: "/usr/lib/systemd/systemd"}
	sshd := &event.Process{ExecID: "sshd", ParentExecID: "init", PID: 700, Binary: "/usr/sbin/sshd", Arguments: "-D"}

	kprobe := &event.Event{Type: event.TypeProcessKprobe, Time: t0, Process: cat, Parent: sh,
		Kprobe: &event.Kprobe{FunctionName: "security_file_open", PolicyName: "sensitive-files",
			Action: "KPROBE_ACTION_POST", Args: []event.Arg{{Kind: event.ArgFile, Str: "/etc/shadow"}}}}
	return map[string]*event.Event{
		"exec_sh":   {Type: event.TypeProcessExec, Time: t0, Process: sh, Parent: runc},
		"exec_cat":  {Type: event.TypeProcessExec, Time: t0, Process: cat, Parent: sh},
		"kprobe":    kprobe,
		"exit_cat":  {Type: event.TypeProcessExit, Time: t0, Process: cat, Parent: sh, Exit: &event.Exit{}},
		"exec_psql": {Type: event.TypeProcessExec, Time: t0, Process: psql, Parent: sh},
		"flow_psql": {Type: event.TypeFlow, Time: t0, Process: psql, Parent: sh,
			Flow: &event.Flow{Verdict: event.VerdictForwarded, Protocol: event.ProtoTCP,
				Source: netip.MustParseAddr("10.0.1.5"), Destination: netip.MustParseAddr("10.0.2.9"),
				DestinationPort: 5432, PolicyNames: []string{"web-to-db"}}},
		"exec_postgres": {Type: event.TypeProcessExec, Time: t0, Process: postgres},
		"exec_sshd":     {Type: event.TypeProcessExec, Time: t0, Process: sshd, Parent: systemd},
		"lsm_sshd": {Type: event.TypeProcessLSM, Time: t0, Process: sshd, Parent: systemd,
			Kprobe: &event.Kprobe{FunctionName: "file_open", PolicyName: "host-audit", Action: "KPROBE_ACTION_POST"}},
		"alert": {Type: event.TypeAlert, Time: t0, Alert: &event.Alert{
			Rule: event.Rule{ID: "VGL-0007", Name: "Credential file read"}, Event: kprobe}},
		"lost": {Type: event.TypeLostEvents, Time: t0, Lost: &event.Lost{Count: 3, Reason: "ringbuf_full"}},
	}
}
