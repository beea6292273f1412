package filter

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const kprobeLine = `{"process_kprobe":{"process":{"exec_id":"a","pid":1,"binary":"/bin/cat","arguments":"--password=x \"q\" {[","pod":{"namespace":"shop","name":"web"}},"parent":{"exec_id":"p","binary":"/bin/sh"},"function_name":"security_file_open","args":[{"file_arg":{"path":"/etc/shadow","flags":"O_RDONLY"},"label":"f"},{"int_arg":-4}],"action":"KPROBE_ACTION_POST"},"node_name":"n1","time":"2026-11-22T07:18:21.000000000Z"}`

func TestFieldMask(t *testing.T) {
	tests := []struct {
		name             string
		include, exclude []string
		want             string
	}{
		{
			name:    "include",
			include: []string{"process.binary", "process.pod.namespace", "function_name"},
			want:    `{"process_kprobe":{"process":{"binary":"/bin/cat","pod":{"namespace":"shop"}},"function_name":"security_file_open"},"node_name":"n1","time":"2026-11-22T07:18:21.000000000Z"}`,
		},
		{
			name:    "exclude",
			exclude: []string{"process.arguments", "parent", "args.label"},
			want:    `{"process_kprobe":{"process":{"exec_id":"a","pid":1,"binary":"/bin/cat","pod":{"namespace":"shop","name":"web"}},"function_name":"security_file_open","args":[{"file_arg":{"path":"/etc/shadow","flags":"O_RDONLY"}},{"int_arg":-4}],"action":"KPROBE_ACTION_POST"},"node_name":"n1","time":"2026-11-22T07:18:21.000000000Z"}`,
		},
		{
			name:    "exclusion wins",
			include: []string{"process", "args.file_arg"},
			exclude: []string{"process.pod", "process.exec_id"},
			want:    `{"process_kprobe":{"process":{"pid":1,"binary":"/bin/cat","arguments":"--password=x \"q\" {["},"args":[{"file_arg":{"path":"/etc/shadow","flags":"O_RDONLY"}},{}]},"node_name":"n1","time":"2026-11-22T07:18:21.000000000Z"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewFieldMask(tt.include, tt.exclude)
			if err != nil {
				t.Fatal(err)
			}
			got := string(m.Apply([]byte("prefix:"), []byte(kprobeLine)))
			if diff := cmp.Diff("prefix:"+tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if !json.Valid([]byte(strings.TrimPrefix(got, "prefix:"))) {
				t.Errorf("invalid JSON: %s", got)
			}
		})
	}
	if m, err := NewFieldMask(nil, nil); m != nil || err != nil {
		t.Errorf("empty mask = %v, %v; want nil, nil", m, err)
	}
}

func TestFieldMaskErrors(t *testing.T) {
	for _, tt := range []struct {
		include, exclude []string
		want             string
	}{
		{[]string{"proces.binary"}, nil, `--export-field-include[0]: unknown member "proces"`},
		{nil, []string{"process..binary"}, `--export-field-exclude[0]: bad path "process..binary"`},
	} {
		_, err := NewFieldMask(tt.include, tt.exclude)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewFieldMask(%q, %q) = %v, want %q", tt.include, tt.exclude, err, tt.want)
		}
	}
}

func FuzzFieldMask(f *testing.F) {
	f.Add([]byte(kprobeLine))
	f.Add([]byte(`{"a":{"b":[1,{"c":"\\\""}]},"node_name":"x"}`))
	m, err := NewFieldMask([]string{"process.pod", "args"}, []string{"process.pod.name", "args.label"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		out := m.Apply(nil, line)
		if json.Valid(line) && !json.Valid(out) {
			t.Fatalf("valid input %q gave invalid output %q", line, out)
		}
	})
}
