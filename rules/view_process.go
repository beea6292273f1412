package rules

import (
	"math/bits"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/encode"
)

// Process objects, with Tetragon's field names (encode/process.go).

// procVal is a process member, absent for a nil process.
func procVal(p *event.Process) val {
	if p == nil {
		return undef
	}
	return nodeVal(objKind, (*procNode)(p))
}

type procNode event.Process

var procSchema = newSchema(
	field[event.Process]{"exec_id", func(p *event.Process) val { return textVal(p.ExecID) }},
	field[event.Process]{"pid", func(p *event.Process) val { return u32(p.PID) }},
	field[event.Process]{"tid", func(p *event.Process) val { return u32(p.TID) }},
	field[event.Process]{"uid", func(p *event.Process) val { return u32(p.UID) }},
	field[event.Process]{"auid", func(p *event.Process) val { return u32(p.AUID) }},
	field[event.Process]{"cwd", func(p *event.Process) val {
		if p.CWD == "" {
			return undef
		}
		return bytesVal(p.CWD)
	}},
	field[event.Process]{"binary", func(p *event.Process) val { return bytesVal(p.Binary) }},
	field[event.Process]{"arguments", func(p *event.Process) val { return textIf(p.Arguments) }},
	field[event.Process]{"argv0", func(p *event.Process) val {
		if p.Argv0 == "" {
			return undef
		}
		return bytesVal(p.Argv0)
	}},
	field[event.Process]{"environment_variables", func(p *event.Process) val {
		if len(p.Env) == 0 {
			return undef
		}
		return nodeVal(arrKind, (*envListNode)(&p.Env))
	}},
	field[event.Process]{"flags", func(p *event.Process) val {
		if p.Flags == 0 {
			return undef
		}
		return strVal(p.Flags.String())
	}},
	field[event.Process]{"start_time", func(p *event.Process) val {
		if p.StartTime.IsZero() {
			return undef
		}
		return strVal(timeText(p.StartTime))
	}},
	field[event.Process]{"parent_exec_id", func(p *event.Process) val { return textIf(p.ParentExecID) }},
	field[event.Process]{"cap", func(p *event.Process) val {
		if p.CapPermitted|p.CapEffective|p.CapInheritable == 0 {
			return undef
		}
		return nodeVal(objKind, (*capNode)(p))
	}},
	field[event.Process]{"ns", func(p *event.Process) val {
		if ns := &p.Namespaces; ns.PidInum|ns.MntInum|ns.NetInum == 0 {
			return undef
		}
		return nodeVal(objKind, (*nsNode)(&p.Namespaces))
	}},
	field[event.Process]{"process_credentials", func(p *event.Process) val {
		return nodeVal(objKind, (*credsNode)(&p.Creds))
	}},
	field[event.Process]{"binary_properties", func(p *event.Process) val {
		b := &p.BinaryProperties
		if b.Setuid == nil && b.Setgid == nil && b.InodeNumber == 0 && b.InodeLinks == 0 &&
			!b.UpperLayer && !b.Memfd && !b.Deleted && b.PrivilegesChanged == 0 {
			return undef
		}
		return nodeVal(objKind, (*bpropsNode)(b))
	}},
	field[event.Process]{"cgroup_id", func(p *event.Process) val { return uintIf(p.CgroupID) }},
	field[event.Process]{"pod", func(p *event.Process) val {
		if p.Pod == nil {
			return undef
		}
		return nodeVal(objKind, (*podNode)(p.Pod))
	}},
)

func (n *procNode) get(k key) val       { return procSchema.get((*event.Process)(n), k) }
func (n *procNode) size() int           { return len(procSchema.fields) }
func (n *procNode) at(i int) (val, val) { return procSchema.at((*event.Process)(n), i) }
func (n *procNode) term(m *materializer) ast.Value {
	return m.process((*event.Process)(n))
}

// "cap": {"permitted": [...], "effective": [...], "inheritable": [...]}.
type capNode event.Process

var capSchema = newSchema(
	field[event.Process]{"permitted", func(p *event.Process) val { return capsVal(&p.CapPermitted) }},
	field[event.Process]{"effective", func(p *event.Process) val { return capsVal(&p.CapEffective) }},
	field[event.Process]{"inheritable", func(p *event.Process) val { return capsVal(&p.CapInheritable) }},
)

func (n *capNode) get(k key) val       { return capSchema.get((*event.Process)(n), k) }
func (n *capNode) size() int           { return len(capSchema.fields) }
func (n *capNode) at(i int) (val, val) { return capSchema.at((*event.Process)(n), i) }
func (n *capNode) term(m *materializer) ast.Value {
	return capSchema.term(m, (*event.Process)(n))
}

// capList is a capability mask as the array of the names of its bits.
type capList uint64

func capsVal(mask *uint64) val {
	if *mask == 0 {
		return undef
	}
	return nodeVal(arrKind, (*capList)(mask))
}

func (n *capList) get(k key) val {
	if k.isNum && k.num < n.size() {
		_, v := n.at(k.num)
		return v
	}
	return undef
}

func (n *capList) size() int { return bits.OnesCount64(uint64(*n)) }

func (n *capList) at(i int) (val, val) {
	m := uint64(*n)
	for range i {
		m &= m - 1
	}
	c := bits.TrailingZeros64(m)
	if name, ok := encode.CapEnumName(c); ok {
		return intVal(int64(i)), strVal(name)
	}
	return intVal(int64(i)), intVal(int64(c))
}

func (n *capList) term(*materializer) ast.Value { return capListTerm(uint64(*n)) }

// "ns": {"pid": {"inum", "is_host"}, "mnt": ..., "net": ...}.
type nsNode event.Namespaces

var nsSchema = newSchema(
	field[event.Namespaces]{"pid", func(ns *event.Namespaces) val {
		return nsEntry(ns.PidInum, (*nsPid)(ns))
	}},
	field[event.Namespaces]{"mnt", func(ns *event.Namespaces) val {
		return nsEntry(ns.MntInum, (*nsMnt)(ns))
	}},
	field[event.Namespaces]{"net", func(ns *event.Namespaces) val {
		return nsEntry(ns.NetInum, (*nsNet)(ns))
	}},
)

func nsEntry(inum uint32, n node) val {
	if inum == 0 {
		return undef
	}
	return nodeVal(objKind, n)
}

func (n *nsNode) get(k key) val       { return nsSchema.get((*event.Namespaces)(n), k) }
func (n *nsNode) size() int           { return len(nsSchema.fields) }
func (n *nsNode) at(i int) (val, val) { return nsSchema.at((*event.Namespaces)(n), i) }
func (n *nsNode) term(m *materializer) ast.Value {
	return nsSchema.term(m, (*event.Namespaces)(n))
}

type (
	nsPid event.Namespaces
	nsMnt event.Namespaces
	nsNet event.Namespaces
)

func nsEntrySchema(inum func(*event.Namespaces) uint32, host func(*event.Namespaces) bool) *schema[event.Namespaces] {
	return newSchema(
		field[event.Namespaces]{"inum", func(ns *event.Namespaces) val { return u32(inum(ns)) }},
		field[event.Namespaces]{"is_host", func(ns *event.Namespaces) val { return boolOf(host(ns)) }},
	)
}

var (
	nsPidSchema = nsEntrySchema(func(ns *event.Namespaces) uint32 { return ns.PidInum },
		func(ns *event.Namespaces) bool { return ns.PidIsHost })
	nsMntSchema = nsEntrySchema(func(ns *event.Namespaces) uint32 { return ns.MntInum },
		func(ns *event.Namespaces) bool { return ns.MntIsHost })
	nsNetSchema = nsEntrySchema(func(ns *event.Namespaces) uint32 { return ns.NetInum },
		func(ns *event.Namespaces) bool { return ns.NetIsHost })
)

func (n *nsPid) get(k key) val       { return nsPidSchema.get((*event.Namespaces)(n), k) }
func (n *nsPid) size() int           { return 2 }
func (n *nsPid) at(i int) (val, val) { return nsPidSchema.at((*event.Namespaces)(n), i) }
func (n *nsPid) term(m *materializer) ast.Value {
	return nsPidSchema.term(m, (*event.Namespaces)(n))
}
func (n *nsMnt) get(k key) val       { return nsMntSchema.get((*event.Namespaces)(n), k) }
func (n *nsMnt) size() int           { return 2 }
func (n *nsMnt) at(i int) (val, val) { return nsMntSchema.at((*event.Namespaces)(n), i) }
func (n *nsMnt) term(m *materializer) ast.Value {
	return nsMntSchema.term(m, (*event.Namespaces)(n))
}
func (n *nsNet) get(k key) val       { return nsNetSchema.get((*event.Namespaces)(n), k) }
func (n *nsNet) size() int           { return 2 }
func (n *nsNet) at(i int) (val, val) { return nsNetSchema.at((*event.Namespaces)(n), i) }
func (n *nsNet) term(m *materializer) ast.Value {
	return nsNetSchema.term(m, (*event.Namespaces)(n))
}

// "process_credentials", and credential arguments.
type credsNode event.Credentials

var credsSchema = newSchema(
	field[event.Credentials]{"uid", func(c *event.Credentials) val { return u32(c.UID) }},
	field[event.Credentials]{"gid", func(c *event.Credentials) val { return u32(c.GID) }},
	field[event.Credentials]{"euid", func(c *event.Credentials) val { return u32(c.EUID) }},
	field[event.Credentials]{"egid", func(c *event.Credentials) val { return u32(c.EGID) }},
	field[event.Credentials]{"suid", func(c *event.Credentials) val { return u32(c.SUID) }},
	field[event.Credentials]{"sgid", func(c *event.Credentials) val { return u32(c.SGID) }},
	field[event.Credentials]{"fsuid", func(c *event.Credentials) val { return u32(c.FSUID) }},
	field[event.Credentials]{"fsgid", func(c *event.Credentials) val { return u32(c.FSGID) }},
)

func (n *credsNode) get(k key) val       { return credsSchema.get((*event.Credentials)(n), k) }
func (n *credsNode) size() int           { return len(credsSchema.fields) }
func (n *credsNode) at(i int) (val, val) { return credsSchema.at((*event.Credentials)(n), i) }
func (n *credsNode) term(m *materializer) ast.Value {
	return credsSchema.term(m, (*event.Credentials)(n))
}

// "binary_properties".
type bpropsNode event.BinaryProperties

var bpropsSchema = newSchema(
	field[event.BinaryProperties]{"setuid", func(b *event.BinaryProperties) val { return idIf(b.Setuid) }},
	field[event.BinaryProperties]{"setgid", func(b *event.BinaryProperties) val { return idIf(b.Setgid) }},
	field[event.BinaryProperties]{"file", func(b *event.BinaryProperties) val {
		if b.InodeNumber == 0 && b.InodeLinks == 0 {
			return undef
		}
		return nodeVal(objKind, (*bpFileNode)(b))
	}},
	field[event.BinaryProperties]{"privileges_changed", func(b *event.BinaryProperties) val {
		if b.PrivilegesChanged == 0 {
			return undef
		}
		names := b.PrivilegesChanged.Names()
		return nodeVal(arrKind, (*stringList)(&names))
	}},
	field[event.BinaryProperties]{"upper_layer", func(b *event.BinaryProperties) val { return trueIf(b.UpperLayer) }},
	field[event.BinaryProperties]{"memfd", func(b *event.BinaryProperties) val { return trueIf(b.Memfd) }},
	field[event.BinaryProperties]{"deleted", func(b *event.BinaryProperties) val { return trueIf(b.Deleted) }},
)

func idIf(id *uint32) val {
	if id == nil {
		return undef
	}
	return u32(*id)
}

func (n *bpropsNode) get(k key) val { return bpropsSchema.get((*event.BinaryProperties)(n), k) }
func (n *bpropsNode) size() int     { return len(bpropsSchema.fields) }
func (n *bpropsNode) at(i int) (val, val) {
	return bpropsSchema.at((*event.BinaryProperties)(n), i)
}
func (n *bpropsNode) term(m *materializer) ast.Value {
	return bpropsSchema.term(m, (*event.BinaryProperties)(n))
}

// "file": {"inode": {"number": "<decimal>", "links": n}}.
type (
	bpFileNode  event.BinaryProperties
	bpInodeNode event.BinaryProperties
)

var (
	bpFileSchema = newSchema(field[event.BinaryProperties]{"inode", func(b *event.BinaryProperties) val {
		return nodeVal(objKind, (*bpInodeNode)(b))
	}})
	bpInodeSchema = newSchema(
		field[event.BinaryProperties]{"number", func(b *event.BinaryProperties) val {
			return strVal(strconv.FormatUint(b.InodeNumber, 10))
		}},
		field[event.BinaryProperties]{"links", func(b *event.BinaryProperties) val { return u32(b.InodeLinks) }},
	)
)

func (n *bpFileNode) get(k key) val { return bpFileSchema.get((*event.BinaryProperties)(n), k) }
func (n *bpFileNode) size() int     { return 1 }
func (n *bpFileNode) at(i int) (val, val) {
	return bpFileSchema.at((*event.BinaryProperties)(n), i)
}
func (n *bpFileNode) term(m *materializer) ast.Value {
	return bpFileSchema.term(m, (*event.BinaryProperties)(n))
}
func (n *bpInodeNode) get(k key) val { return bpInodeSchema.get((*event.BinaryProperties)(n), k) }
func (n *bpInodeNode) size() int     { return 2 }
func (n *bpInodeNode) at(i int) (val, val) {
	return bpInodeSchema.at((*event.BinaryProperties)(n), i)
}
func (n *bpInodeNode) term(m *materializer) ast.Value {
	return bpInodeSchema.term(m, (*event.BinaryProperties)(n))
}

// "pod".
type podNode event.Pod

var podSchema = newSchema(
	field[event.Pod]{"namespace", func(p *event.Pod) val { return textVal(p.Namespace) }},
	field[event.Pod]{"name", func(p *event.Pod) val { return textVal(p.Name) }},
	field[event.Pod]{"uid", func(p *event.Pod) val { return textIf(p.UID) }},
	field[event.Pod]{"container", func(p *event.Pod) val {
		if c := &p.Container; c.ID == "" && c.Name == "" {
			return undef
		}
		return nodeVal(objKind, (*containerNode)(&p.Container))
	}},
	field[event.Pod]{"pod_labels", func(p *event.Pod) val {
		if len(p.Labels) == 0 {
			return undef
		}
		return nodeVal(objKind, (*labelsNode)(&p.Labels))
	}},
	field[event.Pod]{"workload", func(p *event.Pod) val { return textIf(p.Workload) }},
	field[event.Pod]{"workload_kind", func(p *event.Pod) val { return textIf(p.WorkloadKind) }},
)

func (n *podNode) get(k key) val       { return podSchema.get((*event.Pod)(n), k) }
func (n *podNode) size() int           { return len(podSchema.fields) }
func (n *podNode) at(i int) (val, val) { return podSchema.at((*event.Pod)(n), i) }
func (n *podNode) term(m *materializer) ast.Value {
	return m.pod((*event.Pod)(n))
}

type (
	containerNode event.Container
	imageNode     event.Container
)

var (
	containerSchema = newSchema(
		field[event.Container]{"id", func(c *event.Container) val { return textVal(c.ID) }},
		field[event.Container]{"name", func(c *event.Container) val { return textIf(c.Name) }},
		field[event.Container]{"image", func(c *event.Container) val {
			if c.ImageID == "" && c.ImageName == "" {
				return undef
			}
			return nodeVal(objKind, (*imageNode)(c))
		}},
		field[event.Container]{"start_time", func(c *event.Container) val {
			if c.StartTime.IsZero() {
				return undef
			}
			return strVal(timeText(c.StartTime))
		}},
	)
	imageSchema = newSchema(
		field[event.Container]{"id", func(c *event.Container) val { return textIf(c.ImageID) }},
		field[event.Container]{"name", func(c *event.Container) val { return textIf(c.ImageName) }},
	)
)

func (n *containerNode) get(k key) val { return containerSchema.get((*event.Container)(n), k) }
func (n *containerNode) size() int     { return len(containerSchema.fields) }
func (n *containerNode) at(i int) (val, val) {
	return containerSchema.at((*event.Container)(n), i)
}
func (n *containerNode) term(m *materializer) ast.Value {
	return containerSchema.term(m, (*event.Container)(n))
}
func (n *imageNode) get(k key) val       { return imageSchema.get((*event.Container)(n), k) }
func (n *imageNode) size() int           { return len(imageSchema.fields) }
func (n *imageNode) at(i int) (val, val) { return imageSchema.at((*event.Container)(n), i) }
func (n *imageNode) term(m *materializer) ast.Value {
	return imageSchema.term(m, (*event.Container)(n))
}

// "pod_labels": an object of the labels; of two labels whose keys are
// written the same, the JSON object holds the last.
type labelsNode []event.Label

func (n *labelsNode) get(k key) val {
	if !k.isName() {
		return undef
	}
	for i := len(*n) - 1; i >= 0; i-- {
		if l := &(*n)[i]; jsonText(l.Key) == k.s {
			return textVal(l.Value)
		}
	}
	return undef
}

func (n *labelsNode) size() int { return len(*n) }

func (n *labelsNode) at(i int) (val, val) {
	k := jsonText((*n)[i].Key)
	for _, later := range (*n)[i+1:] {
		if jsonText(later.Key) == k {
			return strVal(k), undef
		}
	}
	return strVal(k), textVal((*n)[i].Value)
}

func (n *labelsNode) term(*materializer) ast.Value {
	obj := ast.NewObject()
	for _, l := range *n {
		obj.Insert(ast.StringTerm(jsonText(l.Key)), ast.StringTerm(jsonText(l.Value)))
	}
	return obj
}

// "environment_variables": [{"Key", "Value"}, ...], in Tetragon's shape.
type (
	envListNode []event.EnvVar
	envNode     event.EnvVar
)

func (n *envListNode) get(k key) val {
	if k.isNum && k.num < len(*n) {
		return nodeVal(objKind, (*envNode)(&(*n)[k.num]))
	}
	return undef
}
func (n *envListNode) size() int { return len(*n) }
func (n *envListNode) at(i int) (val, val) {
	return intVal(int64(i)), nodeVal(objKind, (*envNode)(&(*n)[i]))
}
func (n *envListNode) term(m *materializer) ast.Value {
	terms := make([]*ast.Term, len(*n))
	for i := range *n {
		terms[i] = ast.NewTerm(envSchema.term(m, (*event.EnvVar)(&(*n)[i])))
	}
	return ast.NewArray(terms...)
}

var envSchema = newSchema(
	field[event.EnvVar]{"Key", func(v *event.EnvVar) val { return bytesVal(v.Key) }},
	field[event.EnvVar]{"Value", func(v *event.EnvVar) val { return bytesVal(v.Value) }},
)

func (n *envNode) get(k key) val       { return envSchema.get((*event.EnvVar)(n), k) }
func (n *envNode) size() int           { return len(envSchema.fields) }
func (n *envNode) at(i int) (val, val) { return envSchema.at((*event.EnvVar)(n), i) }
func (n *envNode) term(m *materializer) ast.Value {
	return envSchema.term(m, (*event.EnvVar)(n))
}
