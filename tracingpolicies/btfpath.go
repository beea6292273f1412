package tracingpolicies

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"

	"github.com/vigilsec/vigil/kprobes/abi"
)

// ResolveStep is one step of a compiled resolve path: add Offset to the
// current value (a kernel pointer), then keep the address (Size 0) or load
// Size bytes from it (8 for a pointer to follow). The kernel program runs
// the steps with bounded reads (kprobes/abi/lib/generic.h, gen_resolve).
type ResolveStep struct {
	Offset uint32
	Size   uint8
}

// resolveComponentRE is one component of a resolve path: a field name,
// optionally indexed (field[12]).
var resolveComponentRE = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$`)

// checkResolveSyntax reports what is wrong with the form of a resolve path,
// before any kernel is known.
func checkResolveSyntax(path string) error {
	for _, c := range strings.Split(path, ".") {
		if !resolveComponentRE.MatchString(c) {
			return fmt.Errorf("%q: %q is not a field name or an indexed field such as name[3]", path, c)
		}
	}
	return nil
}

// resolvePath compiles the resolve path of an argument whose parameter has
// type t: t points to a structure (through any number of pointers), or,
// with btfType, t is any pointer that is read as a pointer to the struct
// of that name. It returns the steps and the type of the field reached as
// the argument's type reads it (arrays and structures by address, as a
// pointer to them).
func resolvePath(spec *btf.Spec, t btf.Type, btfType, path string) ([]ResolveStep, param, error) {
	var steps []ResolveStep
	var cur btf.Type
	if btfType != "" {
		if _, ok := btf.UnderlyingType(t).(*btf.Pointer); !ok && !isInt64(t) {
			return nil, param{}, fmt.Errorf("btfType %s casts a pointer, and the parameter is %s", btfType, cName(t, 0))
		}
		var st *btf.Struct
		if err := spec.TypeByName(btfType, &st); err != nil && !errors.Is(err, btf.ErrMultipleMatches) {
			var un *btf.Union
			if err := spec.TypeByName(btfType, &un); err != nil && !errors.Is(err, btf.ErrMultipleMatches) {
				return nil, param{}, fmt.Errorf("btfType %q: the kernel's BTF has no struct or union of that name (write it without \"struct \")", btfType)
			}
			cur = un
		} else {
			cur = st
		}
	} else {
		u, ok := btf.UnderlyingType(t).(*btf.Pointer)
		if !ok {
			return nil, param{}, fmt.Errorf("the parameter is %s, not a pointer to a structure (btfType casts a pointer to one)", cName(t, 0))
		}
		cur = btf.UnderlyingType(u.Target)
		// struct cred **new: follow pointers to the structure.
		for {
			p, ok := cur.(*btf.Pointer)
			if !ok {
				break
			}
			steps = append(steps, ResolveStep{Size: 8})
			cur = btf.UnderlyingType(p.Target)
		}
	}

	var off uint32
	comps := strings.Split(path, ".")
	for i, comp := range comps {
		m := resolveComponentRE.FindStringSubmatch(comp)
		if m == nil {
			return nil, param{}, fmt.Errorf("%q is not a field name", comp)
		}
		name := m[1]
		container := cur
		mt, moff, err := findMember(container, name)
		if err != nil {
			return nil, param{}, err
		}
		off += moff
		ft := mt
		if m[2] != "" {
			idx, _ := strconv.ParseUint(m[2], 10, 32)
			switch u := btf.UnderlyingType(ft).(type) {
			case *btf.Array:
				if idx >= uint64(u.Nelems) {
					return nil, param{}, fmt.Errorf("%s[%d]: %s has %d elements", name, idx, name, u.Nelems)
				}
				size, err := btf.Sizeof(u.Type)
				if err != nil {
					return nil, param{}, fmt.Errorf("%s: %w", name, err)
				}
				off += uint32(idx) * uint32(size)
				ft = u.Type
			case *btf.Pointer:
				size, err := btf.Sizeof(u.Target)
				if err != nil {
					return nil, param{}, fmt.Errorf("%s: %w", name, err)
				}
				steps = append(steps, ResolveStep{Offset: off, Size: 8})
				off = uint32(idx) * uint32(size)
				ft = u.Target
			default:
				return nil, param{}, fmt.Errorf("%s is %s, neither an array nor a pointer, so it cannot be indexed", name, cName(ft, 0))
			}
		}
		last := i == len(comps)-1
		switch u := btf.UnderlyingType(ft).(type) {
		case *btf.Struct, *btf.Union:
			if last {
				steps = append(steps, ResolveStep{Offset: off})
				return checkSteps(steps, btfParam(name, &btf.Pointer{Target: ft}))
			}
			cur = u // embedded: the offset goes on adding up
		case *btf.Pointer:
			steps = append(steps, ResolveStep{Offset: off, Size: 8})
			off = 0
			if last {
				return checkSteps(steps, btfParam(name, ft))
			}
			cur = btf.UnderlyingType(u.Target)
			if _, ok := cur.(*btf.Struct); !ok {
				if _, ok := cur.(*btf.Union); !ok {
					return nil, param{}, fmt.Errorf("%s is %s, which has no fields", name, cName(ft, 0))
				}
			}
		case *btf.Array:
			if !last {
				return nil, param{}, fmt.Errorf("%s is an array (%s); index it, such as %s[0]", name, cName(ft, 0), name)
			}
			steps = append(steps, ResolveStep{Offset: off})
			return checkSteps(steps, btfParam(name, ft))
		case *btf.Int, *btf.Enum:
			if !last {
				return nil, param{}, fmt.Errorf("%s is %s, which has no field %q", name, cName(ft, 0), comps[i+1])
			}
			size, err := btf.Sizeof(ft)
			if err != nil || (size != 1 && size != 2 && size != 4 && size != 8) {
				return nil, param{}, fmt.Errorf("%s is %s, of a size the kernel program cannot read", name, cName(ft, 0))
			}
			steps = append(steps, ResolveStep{Offset: off, Size: uint8(size)})
			return checkSteps(steps, btfParam(name, ft))
		default:
			return nil, param{}, fmt.Errorf("%s is %s, which cannot be read", name, cName(ft, 0))
		}
	}
	return nil, param{}, errors.New("empty path")
}

func checkSteps(steps []ResolveStep, p param) ([]ResolveStep, param, error) {
	if len(steps) > abi.GenMaxResolve {
		return nil, param{}, fmt.Errorf("the path needs %d reads; at most %d", len(steps), abi.GenMaxResolve)
	}
	return steps, p, nil
}

func isInt64(t btf.Type) bool {
	i, ok := btf.UnderlyingType(t).(*btf.Int)
	return ok && i.Size == 8
}

// findMember finds the field name in a struct or union, also inside its
// anonymous members, with its byte offset.
func findMember(t btf.Type, name string) (btf.Type, uint32, error) {
	var members []btf.Member
	switch u := t.(type) {
	case *btf.Struct:
		members = u.Members
	case *btf.Union:
		members = u.Members
	default:
		return nil, 0, fmt.Errorf("%s has no fields", cName(t, 0))
	}
	if mt, off, ok := memberIn(members, name); ok {
		if mt == nil {
			return nil, 0, fmt.Errorf("%s.%s is a bit field, which cannot be read", cName(t, 0), name)
		}
		return mt, off, nil
	}
	var names []string
	collectMemberNames(members, &names)
	return nil, 0, fmt.Errorf("%s has no field %q%s", cName(t, 0), name, didYouMean(name, names))
}

// memberIn returns the type and offset of member name; a nil type for a
// bit field.
func memberIn(members []btf.Member, name string) (btf.Type, uint32, bool) {
	for _, m := range members {
		if m.Name == name {
			if m.BitfieldSize != 0 || m.Offset%8 != 0 {
				return nil, 0, true
			}
			return m.Type, uint32(m.Offset / 8), true
		}
	}
	for _, m := range members {
		if m.Name != "" {
			continue
		}
		var inner []btf.Member
		switch u := btf.UnderlyingType(m.Type).(type) {
		case *btf.Struct:
			inner = u.Members
		case *btf.Union:
			inner = u.Members
		}
		if t, off, ok := memberIn(inner, name); ok {
			return t, uint32(m.Offset/8) + off, true
		}
	}
	return nil, 0, false
}

func collectMemberNames(members []btf.Member, out *[]string) {
	for _, m := range members {
		if m.Name != "" {
			*out = append(*out, m.Name)
			continue
		}
		switch u := btf.UnderlyingType(m.Type).(type) {
		case *btf.Struct:
			collectMemberNames(u.Members, out)
		case *btf.Union:
			collectMemberNames(u.Members, out)
		}
	}
}
