package encode

import (
	"strconv"
	"strings"
	"unsafe"

	"github.com/vigilsec/vigil/event"
)

// appendProcess appends a process object with Tetragon's field names.
func appendProcess(dst []byte, p *event.Process, e *Encoder) []byte {
	if e.procs == nil {
		return encodeProcess(dst, p, e)
	}
	s := &e.procs[slot(unsafe.Pointer(p), len(e.procs))]
	if s.p == p {
		return append(dst, s.json...)
	}
	start := len(dst)
	dst = encodeProcess(dst, p, e)
	s.p = p
	s.json = append(s.json[:0], dst[start:]...)
	return dst
}

func encodeProcess(dst []byte, p *event.Process, e *Encoder) []byte {
	dst = append(dst, `{"exec_id":`...)
	dst = AppendString(dst, p.ExecID)
	dst = append(dst, `,"pid":`...)
	dst = strconv.AppendUint(dst, uint64(p.PID), 10)
	dst = append(dst, `,"tid":`...)
	dst = strconv.AppendUint(dst, uint64(p.TID), 10)
	dst = append(dst, `,"uid":`...)
	dst = strconv.AppendUint(dst, uint64(p.UID), 10)
	dst = append(dst, `,"auid":`...)
	dst = strconv.AppendUint(dst, uint64(p.AUID), 10)
	if p.CWD != "" {
		dst = append(dst, `,"cwd":`...)
		dst = AppendBytes(dst, p.CWD)
	}
	dst = append(dst, `,"binary":`...)
	dst = AppendBytes(dst, p.Binary)
	if p.Arguments != "" {
		args := p.Arguments
		if e.opts.Redact != nil {
			args = e.opts.Redact(args)
		}
		dst = append(dst, `,"arguments":`...)
		dst = AppendString(dst, args)
		if e.opts.ArgumentsList && e.opts.Format != FormatTetragon {
			dst = append(dst, `,"arguments_list":`...)
			dst = appendArgumentsList(dst, args)
		}
	}
	tetragon := e.opts.Format == FormatTetragon
	if p.Argv0 != "" && !tetragon {
		dst = append(dst, `,"argv0":`...)
		dst = AppendBytes(dst, p.Argv0)
	}
	if len(p.Env) > 0 {
		dst = appendEnv(dst, p.Env, e.opts.Redact)
	}
	if p.Flags != 0 {
		dst = append(dst, `,"flags":"`...)
		dst = p.Flags.Append(dst)
		dst = append(dst, '"')
	}
	if !p.StartTime.IsZero() && (!tetragon || timestampOK(p.StartTime)) {
		dst = append(dst, `,"start_time":`...)
		dst = appendTime(dst, p.StartTime)
	}
	if p.ParentExecID != "" {
		dst = append(dst, `,"parent_exec_id":`...)
		dst = AppendString(dst, p.ParentExecID)
	}
	if p.CapPermitted|p.CapEffective|p.CapInheritable != 0 {
		dst = append(dst, `,"cap":{`...)
		if p.CapPermitted != 0 {
			dst = appendKey(dst, "permitted")
			dst = appendCapList(dst, p.CapPermitted)
		}
		if p.CapEffective != 0 {
			dst = appendKey(dst, "effective")
			dst = appendCapList(dst, p.CapEffective)
		}
		if p.CapInheritable != 0 {
			dst = appendKey(dst, "inheritable")
			dst = appendCapList(dst, p.CapInheritable)
		}
		dst = append(dst, '}')
	}
	if ns := &p.Namespaces; ns.PidInum|ns.MntInum|ns.NetInum != 0 {
		dst = append(dst, `,"ns":{`...)
		dst = appendNamespace(dst, "pid", ns.PidInum, ns.PidIsHost)
		dst = appendNamespace(dst, "mnt", ns.MntInum, ns.MntIsHost)
		dst = appendNamespace(dst, "net", ns.NetInum, ns.NetIsHost)
		dst = append(dst, '}')
	}
	dst = append(dst, `,"process_credentials":`...)
	dst = appendCreds(dst, &p.Creds)
	dst = appendBinaryProperties(dst, &p.BinaryProperties, tetragon)
	if p.CgroupID != 0 && !tetragon {
		dst = append(dst, `,"cgroup_id":`...)
		dst = strconv.AppendUint(dst, p.CgroupID, 10)
	}
	if p.Pod != nil {
		dst = append(dst, `,"pod":`...)
		dst = appendPod(dst, p.Pod, e)
	}
	return append(dst, '}')
}

// appendEnv appends environment_variables in Tetragon's shape, a list of
// {"Key","Value"} objects. The redaction patterns apply to each variable
// written KEY=VALUE, so a pattern can name the variable.
func appendEnv(dst []byte, env []event.EnvVar, redact func(string) string) []byte {
	dst = append(dst, `,"environment_variables":[`...)
	for i, v := range env {
		if i > 0 {
			dst = append(dst, ',')
		}
		value := v.Value
		if redact != nil {
			kv := v.Key + "=" + v.Value
			if r := redact(kv); r != kv {
				value = strings.TrimPrefix(r, v.Key+"=")
			}
		}
		dst = append(dst, `{"Key":`...)
		dst = AppendBytes(dst, v.Key)
		dst = append(dst, `,"Value":`...)
		dst = AppendBytes(dst, value)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

func appendNamespace(dst []byte, key string, inum uint32, host bool) []byte {
	if inum == 0 {
		return dst
	}
	dst = appendKey(dst, key)
	dst = append(dst, `{"inum":`...)
	dst = strconv.AppendUint(dst, uint64(inum), 10)
	if host {
		dst = append(dst, `,"is_host":true}`...)
	} else {
		dst = append(dst, `,"is_host":false}`...)
	}
	return dst
}

func appendCreds(dst []byte, c *event.Credentials) []byte {
	dst = append(dst, `{"uid":`...)
	dst = strconv.AppendUint(dst, uint64(c.UID), 10)
	dst = append(dst, `,"gid":`...)
	dst = strconv.AppendUint(dst, uint64(c.GID), 10)
	dst = append(dst, `,"euid":`...)
	dst = strconv.AppendUint(dst, uint64(c.EUID), 10)
	dst = append(dst, `,"egid":`...)
	dst = strconv.AppendUint(dst, uint64(c.EGID), 10)
	dst = append(dst, `,"suid":`...)
	dst = strconv.AppendUint(dst, uint64(c.SUID), 10)
	dst = append(dst, `,"sgid":`...)
	dst = strconv.AppendUint(dst, uint64(c.SGID), 10)
	dst = append(dst, `,"fsuid":`...)
	dst = strconv.AppendUint(dst, uint64(c.FSUID), 10)
	dst = append(dst, `,"fsgid":`...)
	dst = strconv.AppendUint(dst, uint64(c.FSGID), 10)
	return append(dst, '}')
}

// appendBinaryProperties appends ,"binary_properties":{...} with only the
// parts that are set, or nothing when none is. tetragon leaves out Vigil's
// own members (upper_layer, memfd, deleted).
func appendBinaryProperties(dst []byte, b *event.BinaryProperties, tetragon bool) []byte {
	vigil := !tetragon && (b.UpperLayer || b.Memfd || b.Deleted)
	if b.Setuid == nil && b.Setgid == nil && b.InodeNumber == 0 && b.InodeLinks == 0 &&
		b.PrivilegesChanged == 0 && !vigil {
		return dst
	}
	dst = append(dst, `,"binary_properties":{`...)
	if b.Setuid != nil {
		dst = appendUintField(dst, "setuid", uint64(*b.Setuid))
	}
	if b.Setgid != nil {
		dst = appendUintField(dst, "setgid", uint64(*b.Setgid))
	}
	if b.InodeNumber != 0 || b.InodeLinks != 0 {
		dst = appendKey(dst, "file")
		dst = append(dst, `{"inode":{"number":"`...)
		dst = strconv.AppendUint(dst, b.InodeNumber, 10)
		dst = append(dst, `","links":`...)
		dst = strconv.AppendUint(dst, uint64(b.InodeLinks), 10)
		dst = append(dst, '}', '}')
	}
	if b.PrivilegesChanged != 0 {
		dst = appendKey(dst, "privileges_changed")
		dst = append(dst, '[')
		for i := 0; i < 8; i++ {
			if name, ok := b.PrivilegesChanged.NameAt(i); ok {
				dst = sep(dst)
				dst = AppendString(dst, name)
			}
		}
		dst = append(dst, ']')
	}
	if !tetragon {
		if b.UpperLayer {
			dst = appendBoolField(dst, "upper_layer", true)
		}
		if b.Memfd {
			dst = appendBoolField(dst, "memfd", true)
		}
		if b.Deleted {
			dst = appendBoolField(dst, "deleted", true)
		}
	}
	return append(dst, '}')
}

func appendPod(dst []byte, pod *event.Pod, e *Encoder) []byte {
	if e.pods == nil {
		return encodePod(dst, pod, e.opts.Format == FormatTetragon)
	}
	s := &e.pods[slot(unsafe.Pointer(pod), len(e.pods))]
	if s.p == pod {
		return append(dst, s.json...)
	}
	start := len(dst)
	dst = encodePod(dst, pod, e.opts.Format == FormatTetragon)
	s.p = pod
	s.json = append(s.json[:0], dst[start:]...)
	return dst
}

func encodePod(dst []byte, pod *event.Pod, tetragon bool) []byte {
	dst = append(dst, `{"namespace":`...)
	dst = AppendString(dst, pod.Namespace)
	dst = append(dst, `,"name":`...)
	dst = AppendString(dst, pod.Name)
	if pod.UID != "" {
		dst = appendStringField(dst, "uid", pod.UID)
	}
	if c := &pod.Container; c.ID != "" || c.Name != "" {
		dst = append(dst, `,"container":{"id":`...)
		dst = AppendString(dst, c.ID)
		if c.Name != "" {
			dst = appendStringField(dst, "name", c.Name)
		}
		if c.ImageID != "" || c.ImageName != "" {
			dst = appendKey(dst, "image")
			dst = append(dst, '{')
			if c.ImageID != "" {
				dst = appendStringField(dst, "id", c.ImageID)
			}
			if c.ImageName != "" {
				dst = appendStringField(dst, "name", c.ImageName)
			}
			dst = append(dst, '}')
		}
		if !c.StartTime.IsZero() && (!tetragon || timestampOK(c.StartTime)) {
			dst = appendKey(dst, "start_time")
			dst = appendTime(dst, c.StartTime)
		}
		dst = append(dst, '}')
	}
	if len(pod.Labels) > 0 {
		dst = append(dst, `,"pod_labels":{`...)
		for i := range pod.Labels {
			l := &pod.Labels[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, l.Key)
			dst = append(dst, ':')
			dst = AppendString(dst, l.Value)
		}
		dst = append(dst, '}')
	}
	if pod.Workload != "" {
		dst = appendStringField(dst, "workload", pod.Workload)
	}
	if pod.WorkloadKind != "" {
		dst = appendStringField(dst, "workload_kind", pod.WorkloadKind)
	}
	return append(dst, '}')
}
