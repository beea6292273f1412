package hubble

import (
	"fmt"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// fieldMask keeps the fields a GetFlows request's field_mask names; a nil
// mask keeps everything.
type fieldMask struct {
	keep map[protoreflect.Name]*fieldMask // nil value: the whole field
}

func compileFieldMask(fm *fieldmaskpb.FieldMask) (*fieldMask, error) {
	if len(fm.GetPaths()) == 0 {
		return nil, nil
	}
	if !fm.IsValid(&flowpb.Flow{}) {
		return nil, fmt.Errorf("field_mask: %v names a field that flows do not have", fm.GetPaths())
	}
	root := &fieldMask{keep: map[protoreflect.Name]*fieldMask{}}
	for _, p := range fm.GetPaths() {
		m := root
		parts := strings.Split(p, ".")
		for i, part := range parts {
			n := protoreflect.Name(part)
			sub, seen := m.keep[n]
			if seen && sub == nil {
				break // the whole field is kept already
			}
			if i == len(parts)-1 {
				m.keep[n] = nil
				break
			}
			if sub == nil {
				sub = &fieldMask{keep: map[protoreflect.Name]*fieldMask{}}
				m.keep[n] = sub
			}
			m = sub
		}
	}
	return root, nil
}

// apply returns a copy of f with only the masked fields; f is unchanged.
func (m *fieldMask) apply(f *flowpb.Flow) *flowpb.Flow {
	if m == nil {
		return f
	}
	out := &flowpb.Flow{}
	m.copy(f.ProtoReflect(), out.ProtoReflect())
	return out
}

func (m *fieldMask) copy(src, dst protoreflect.Message) {
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		sub, ok := m.keep[fd.Name()]
		if !ok {
			return true
		}
		if sub == nil || fd.Message() == nil || fd.IsList() || fd.IsMap() {
			dst.Set(fd, v)
			return true
		}
		nv := dst.NewField(fd)
		sub.copy(v.Message(), nv.Message())
		dst.Set(fd, nv)
		return true
	})
}
