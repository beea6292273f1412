package tracingpolicies

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// param is a function parameter or tracepoint field, as much of its C type
// as is needed to tell whether an argument type fits it.
type param struct {
	name string
	// ctype is the C spelling, for messages: "struct file *"; for arrays,
	// of the element, with dims holding "[16]".
	ctype string
	dims  string
	kind  paramKind
	// names are the names of the type (for pointers and arrays, of the
	// pointee or element) along its typedef chain, without qualifiers:
	// {"kernel_cap_t", "struct kernel_cap_struct"}, {"char"}.
	names []string
	// typ is the BTF type, when the parameter comes from BTF (resolve
	// paths start from it).
	typ btf.Type
}

type paramKind int

const (
	paramOther paramKind = iota
	paramInt
	paramPointer
	paramArray
	paramStruct
	// paramDataLoc is a tracepoint's __data_loc field: a string stored
	// after the record.
	paramDataLoc
)

func (p param) String() string {
	if p.name == "" {
		return p.ctype + p.dims
	}
	if strings.HasSuffix(p.ctype, "*") {
		return p.ctype + p.name + p.dims
	}
	return p.ctype + " " + p.name + p.dims
}

func (p param) is(names ...string) bool {
	for _, have := range p.names {
		for _, want := range names {
			if have == want {
				return true
			}
		}
	}
	return false
}

var charNames = []string{"char", "signed char", "unsigned char", "u8", "s8", "__u8", "__s8", "uint8_t", "int8_t"}

// fits reports whether an argument of type t can be read from p, and if not,
// what t needs.
func fits(t ArgType, p param) (bool, string) {
	ptrTo := func(want string, names ...string) (bool, string) {
		return p.kind == paramPointer && p.is(names...), want
	}
	switch t {
	case TypeNop:
		return true, ""
	case TypeInt64, TypeUint64:
		// A pointer can be read as its address.
		return p.kind == paramInt || p.kind == paramPointer, "an integer or a pointer"
	case TypeFd:
		return p.kind == paramInt, "an integer file descriptor"
	case TypeString:
		ok := (p.kind == paramPointer || p.kind == paramArray) && p.is(charNames...) || p.kind == paramDataLoc
		return ok, "a char * (or a char array)"
	case TypeCharBuf:
		ok := (p.kind == paramPointer || p.kind == paramArray) && p.is(append([]string{"void"}, charNames...)...)
		return ok, "a char * or void * buffer"
	case TypeCharIovec:
		return ptrTo("a struct iovec *", "struct iovec")
	case TypeFile:
		return ptrTo("a struct file *", "struct file")
	case TypePath:
		return ptrTo("a struct path *", "struct path")
	case TypeFilename:
		return ptrTo("a struct filename *", "struct filename")
	case TypeLinuxBinprm:
		return ptrTo("a struct linux_binprm *", "struct linux_binprm")
	case TypeDentry:
		return ptrTo("a struct dentry *", "struct dentry")
	case TypeSock:
		return ptrTo("a struct sock *", "struct sock")
	case TypeSocket:
		return ptrTo("a struct socket *", "struct socket")
	case TypeSockaddr:
		return ptrTo("a struct sockaddr *", "struct sockaddr", "struct sockaddr_storage")
	case TypeSkb:
		return ptrTo("a struct sk_buff *", "struct sk_buff")
	case TypeCred:
		return ptrTo("a struct cred *", "struct cred")
	case TypeKernelCapT:
		ok := (p.kind == paramPointer || p.kind == paramStruct) && p.is("kernel_cap_t", "struct kernel_cap_struct")
		return ok, "a kernel_cap_t or kernel_cap_t *"
	}
	if t.Class() == ClassInteger {
		return p.kind == paramInt, "an integer"
	}
	return false, "a type Vigil can read"
}

// btfParam describes a BTF type.
func btfParam(name string, t btf.Type) param {
	p := param{name: name, ctype: cName(t, 0), typ: t}
	switch u := btf.UnderlyingType(t).(type) {
	case *btf.Int, *btf.Enum:
		p.kind = paramInt
		p.names = typeNames(t)
	case *btf.Pointer:
		p.kind = paramPointer
		p.names = typeNames(u.Target)
	case *btf.Array:
		p.kind = paramArray
		p.names = typeNames(u.Type)
		if _, direct := t.(*btf.Array); direct {
			p.ctype, p.dims = cName(u.Type, 0), fmt.Sprintf("[%d]", u.Nelems)
		}
	case *btf.Struct, *btf.Union:
		p.kind = paramStruct
		p.names = typeNames(t)
	}
	return p
}

// typeNames lists the names of t along its typedef chain.
func typeNames(t btf.Type) []string {
	var names []string
	for depth := 0; t != nil && depth < 16; depth++ {
		switch v := t.(type) {
		case *btf.Const:
			t = v.Type
		case *btf.Volatile:
			t = v.Type
		case *btf.Restrict:
			t = v.Type
		case *btf.TypeTag:
			t = v.Type
		case *btf.Typedef:
			names = append(names, v.Name)
			t = v.Type
		case *btf.Struct:
			return append(names, "struct "+v.Name)
		case *btf.Union:
			return append(names, "union "+v.Name)
		case *btf.Enum:
			return append(names, "enum "+v.Name)
		case *btf.Int:
			return append(names, v.Name)
		case *btf.Void:
			return append(names, "void")
		case *btf.Fwd:
			return append(names, v.Kind.String()+" "+v.Name)
		default:
			return names
		}
	}
	return names
}

// cName spells t in C.
func cName(t btf.Type, depth int) string {
	if depth > 16 {
		return "..."
	}
	switch v := t.(type) {
	case *btf.Const:
		return "const " + cName(v.Type, depth+1)
	case *btf.Volatile:
		return "volatile " + cName(v.Type, depth+1)
	case *btf.Restrict:
		return cName(v.Type, depth+1)
	case *btf.TypeTag:
		return cName(v.Type, depth+1)
	case *btf.Typedef:
		return v.Name
	case *btf.Struct:
		return "struct " + v.Name
	case *btf.Union:
		return "union " + v.Name
	case *btf.Enum:
		return "enum " + v.Name
	case *btf.Fwd:
		return v.Kind.String() + " " + v.Name
	case *btf.Int:
		return v.Name
	case *btf.Void:
		return "void"
	case *btf.Pointer:
		if _, ok := btf.UnderlyingType(v.Target).(*btf.FuncProto); ok {
			return "function pointer"
		}
		return cName(v.Target, depth+1) + " *"
	case *btf.Array:
		return fmt.Sprintf("%s[%d]", cName(v.Type, depth+1), v.Nelems)
	case nil:
		return "void"
	}
	return t.TypeName()
}

// funcParams describes the parameters and the return type of a BTF
// function; ret is nil for void.
func funcParams(fn *btf.Func) (params []param, ret *param) {
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		return nil, nil
	}
	for _, p := range proto.Params {
		params = append(params, btfParam(p.Name, p.Type))
	}
	if _, void := proto.Return.(*btf.Void); proto.Return != nil && !void {
		r := btfParam("", proto.Return)
		ret = &r
	}
	return params, ret
}

var (
	formatFieldRE = regexp.MustCompile(`^\s*field:([^;]+);\s*offset:(\d+);\s*size:(\d+);\s*signed:([01]);`)
	declArrayRE   = regexp.MustCompile(`^(.*?)\s*\b([A-Za-z_][A-Za-z0-9_]*)\s*(\[[^\]]*\])$`)
	declNameRE    = regexp.MustCompile(`^(.*?)\s*\b([A-Za-z_][A-Za-z0-9_]*)$`)
)

// parseFormat reads the fields of a tracefs events/SUBSYS/EVENT/format
// file, in order, including the common_* fields.
func parseFormat(data []byte) ([]param, error) {
	var out []param
	sc := bufio.NewScanner(bytes.NewReader(data))
	inFormat := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "format:") {
			inFormat = true
			continue
		}
		if strings.HasPrefix(line, "print fmt:") {
			break
		}
		if !inFormat || strings.TrimSpace(line) == "" {
			continue
		}
		m := formatFieldRE.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("unexpected line in tracepoint format: %q", line)
		}
		p, err := parseDecl(strings.TrimSpace(m[1]))
		if err != nil {
			return nil, err
		}
		if size, _ := strconv.Atoi(m[3]); size == 0 && p.kind == paramArray {
			// Flexible arrays (char __data[0]) hold no field.
			continue
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !inFormat {
		return nil, fmt.Errorf("no format: section in tracepoint format")
	}
	return out, nil
}

// parseDecl parses a tracefs field declaration such as "const char *
// filename", "char comm[16]" or "__data_loc char[] name".
func parseDecl(decl string) (param, error) {
	for _, loc := range []string{"__data_loc ", "__rel_loc "} {
		if rest, ok := strings.CutPrefix(decl, loc); ok {
			m := declNameRE.FindStringSubmatch(rest)
			if m == nil {
				return param{}, fmt.Errorf("cannot parse tracepoint field %q", decl)
			}
			return param{name: m[2], ctype: loc + m[1], kind: paramDataLoc}, nil
		}
	}
	if m := declArrayRE.FindStringSubmatch(decl); m != nil {
		typ := strings.TrimSpace(m[1])
		return param{name: m[2], ctype: typ, dims: m[3], kind: paramArray, names: []string{bareType(typ)}}, nil
	}
	m := declNameRE.FindStringSubmatch(decl)
	if m == nil {
		return param{}, fmt.Errorf("cannot parse tracepoint field %q", decl)
	}
	typ := strings.TrimSpace(m[1])
	if typ == "" {
		return param{}, fmt.Errorf("cannot parse tracepoint field %q: no type", decl)
	}
	p := param{name: m[2], ctype: typ}
	switch {
	case strings.HasSuffix(typ, "*"):
		p.kind = paramPointer
		p.names = []string{bareType(strings.TrimSuffix(typ, "*"))}
		p.ctype = strings.TrimSpace(strings.TrimSuffix(typ, "*")) + " *"
	case strings.HasPrefix(typ, "struct ") || strings.HasPrefix(typ, "union "):
		p.kind = paramStruct
		p.names = []string{bareType(typ)}
	default:
		// Scalar fields of tracepoints are integers (or typedefs of
		// integers: pid_t, umode_t, size_t).
		p.kind = paramInt
		p.names = []string{bareType(typ)}
	}
	return p, nil
}

// bareType drops qualifiers and extra spaces from a C type.
func bareType(t string) string {
	var words []string
	for _, w := range strings.Fields(t) {
		if w == "const" || w == "volatile" || w == "__user" {
			continue
		}
		words = append(words, w)
	}
	return strings.Join(words, " ")
}
