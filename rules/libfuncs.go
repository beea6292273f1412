package rules

import (
	"strings"
)

// libPackage is the package of the embedded library. The functions of
// that library that every default rule calls first are computed in Go,
// as lib.rego defines them (TestNativeLibraryFunctions compares them with
// Rego's); only the embedded module of that package is trusted to mean
// them. Its other functions are compiled like any rule's.
const libPackage = "data.vigil.lib.events"

// nativeLib makes the term of a call of the library's function name.
func (cp *compiler) nativeLib(name string, args []term) (term, bool) {
	lib := cp.mods[libPackage]
	switch {
	case name == "basename" && len(args) == 1:
		return stringFunc(args[0], basename), true
	case name == "syscall_name" && len(args) == 1:
		return stringFunc(args[0], syscallName), true
	case name == "is_shell" && len(args) == 1:
		shells, ok := lib.consts["shells"]
		if !ok || shells.k != setKind {
			return nil, false
		}
		x := args[0]
		return func(c *ectx) val {
			v := x(c)
			if v.k != strKind || !member(strVal(basename(v.s)), shells) {
				return undef
			}
			return trueVal
		}, true
	case name == "in_container" && len(args) == 1:
		x := args[0]
		pod, ns := nameKey("pod"), nameKey("namespace")
		nsKey, pid, isHost := nameKey("ns"), nameKey("pid"), nameKey("is_host")
		return func(c *ectx) val {
			p := x(c)
			if walk(p, pod, ns).truthy() {
				return trueVal
			}
			// p.ns.pid.is_host == false: false itself, not absence.
			if h := walk(p, nsKey, pid, isHost); h.k == boolKind && !h.b {
				return trueVal
			}
			return undef
		}, true
	case name == "arg" && len(args) == 2:
		return argFunc(args[0], args[1]), true
	}
	return nil, false
}

// basename(path): the last element of a path (split(path, "/")'s last).
func basename(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// syscallName(fn): trim_prefix(regex.replace(fn, `^__[a-z0-9]+_sys_`, ""),
// "sys_"). The class excludes '_', so the only match is the longest run.
func syscallName(fn string) string {
	s := fn
	if strings.HasPrefix(s, "__") {
		i := 2
		for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= '0' && s[i] <= '9') {
			i++
		}
		if i > 2 && strings.HasPrefix(s[i:], "_sys_") {
			s = s[i+len("_sys_"):]
		}
	}
	return strings.TrimPrefix(s, "sys_")
}

// stringFunc is a function of a string, undefined on anything else (the
// builtins it stands for fail on other types).
func stringFunc(x term, f func(string) string) term {
	return func(c *ectx) val {
		v := x(c)
		if v.k != strKind {
			return undef
		}
		return strVal(f(v.s))
	}
}

// walk follows keys from v.
func walk(v val, keys ...key) val {
	for _, k := range keys {
		switch v.k {
		case objKind, arrKind, setKind:
			v = v.n.get(k)
		default:
			return undef
		}
	}
	return v
}

// argFunc is arg(ev, label): the element a of ev.args with a.label ==
// label. Two different ones are Rego's conflict error: Rego decides.
func argFunc(evT, labelT term) term {
	argsKey, lk := nameKey("args"), nameKey("label")
	return func(c *ectx) val {
		label := labelT(c)
		args := walk(evT(c), argsKey)
		if !label.defined() {
			return undef
		}
		switch args.k {
		case arrKind, objKind, setKind:
		default:
			return undef
		}
		found := undef
		for i, n := 0, args.n.size(); i < n; i++ {
			_, a := args.n.at(i)
			if !a.defined() || !equal(walk(a, lk), label) {
				continue
			}
			if found.defined() && !equal(found, a) {
				c.punted = true
				return undef
			}
			found = a
		}
		return found
	}
}
