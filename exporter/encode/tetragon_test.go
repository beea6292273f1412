package encode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/tetragonschema"
)

// vigilMember is a member of Vigil's export that Tetragon's schema lacks,
// named by the schema message it sits in and its own name.
type vigilMember struct {
	message, field string
	// about says what it holds, and what the tetragon format does.
	about string
}

// vigilMembers classifies every member of the export that Tetragon's
// schema does not have. TestEveryMemberIsClassified fails when the encoder
// writes a member that is neither in Tetragon's schema nor here, and when
// an entry here is no longer written; docs/tetragon-compat.md's table is
// generated from this list and from the schema (TestCompatDoc).
var vigilMembers = []vigilMember{
	{"tetragon.GetEventsResponse", "flow", "a network flow with Hubble's field names and the process (docs/export.md); not written in the tetragon format"},
	{"tetragon.GetEventsResponse", "alert", "a detection of the rules engine, with the event that raised it; not written in the tetragon format"},
	{"tetragon.GetEventsResponse", "lost_events", "events lost, by reason and sink; the tetragon format writes rate_limit_info instead, and nothing for losses to the allow and deny lists"},
	{"tetragon.Process", "cgroup_id", "the cgroup v2 id of the process"},
	{"tetragon.Process", "argv0", "argv[0] when its base name is not the binary's (exec -a, a busybox applet, a login shell's -sh); Tetragon has no such member"},
	{"tetragon.Process", "arguments_list", "with --export-arguments-array: the arguments as an array"},
	{"tetragon.BinaryProperties", "upper_layer", "the executable is on an overlayfs upper (writable) layer"},
	{"tetragon.BinaryProperties", "memfd", "the executable is an anonymous memory file"},
	{"tetragon.BinaryProperties", "deleted", "the executable was unlinked"},
	{"tetragon.ProcessExit", "core_dumped", "the terminating signal dumped core"},
	{"tetragon.KprobeArgument", "truncated", "the value was cut to the kernel's copy limit"},
	{"tetragon.KprobeFile", "open_flags", "the open(2) flags of the file, `O_WRONLY\\|O_CREAT` (Tetragon's `flags` are path-resolution flags)"},
}

// hookMembers are Vigil's members of process_kprobe, process_tracepoint,
// process_lsm and process_uprobe.
var hookMembers = []vigilMember{
	{"", "mechanism", "how the hook was attached: kprobe, fentry, lsm, tracepoint, ..."},
	{"", "monitor", "the policy is in monitor mode: action was not taken (the tetragon format writes KPROBE_ACTION_POST)"},
	{"", "action_note", "the limits of the action: not taken (protected process, monitor), or taken after the call"},
	{"", "errno", "the error an Override returned to the caller"},
	{"", "signal", "the signal a Sigkill or Signal action sent"},
	{"", "repeats", "identical calls folded in the kernel: count, first_time, last_time"},
}

func allVigilMembers() []vigilMember {
	out := append([]vigilMember(nil), vigilMembers...)
	for _, msg := range []string{"tetragon.ProcessKprobe", "tetragon.ProcessTracepoint", "tetragon.ProcessLsm", "tetragon.ProcessUprobe", "tetragon.ProcessUsdt"} {
		for _, m := range hookMembers {
			m.message = msg
			out = append(out, m)
		}
	}
	// Tetragon's tracepoint, LSM and uprobe events have no return value.
	for _, msg := range []string{"tetragon.ProcessTracepoint", "tetragon.ProcessLsm", "tetragon.ProcessUprobe", "tetragon.ProcessUsdt"} {
		out = append(out, vigilMember{msg, "return", "the hook's return value"})
	}
	return out
}

func loadSchema(t *testing.T) *tetragonschema.Schema {
	t.Helper()
	s, err := tetragonschema.Load()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hookFixtures returns the fixtures and, for each policy event, the same
// event as each of the other hook types, so that every member of each
// hook type is written.
func hookFixtures() map[string]*event.Event {
	out := fixtures()
	for name, ev := range fixtures() {
		if ev.Kprobe == nil {
			continue
		}
		for _, typ := range []event.Type{event.TypeProcessKprobe, event.TypeProcessTracepoint, event.TypeProcessLSM, event.TypeProcessUprobe} {
			if typ != ev.Type {
				c := *ev
				c.Type = typ
				if typ == event.TypeProcessUprobe {
					k := *ev.Kprobe
					k.FunctionName, k.UprobePath = "readline", "/usr/bin/bash"
					c.Kprobe = &k
				}
				out[name+"@"+typ.String()] = &c
			}
		}
		if ev.Type == event.TypeProcessKprobe {
			c := *ev
			c.Type = event.TypeProcessUsdt
			k := *ev.Kprobe
			k.FunctionName, k.UprobePath, k.UsdtProvider = "query__start", "/usr/sbin/mysqld", "mysql"
			c.Kprobe = &k
			out[name+"@process_usdt"] = &c
		}
		if ev.Type == event.TypeProcessKprobe {
			// A probe placed at a file offset has no symbol.
			c := *ev
			c.Type = event.TypeProcessUprobe
			k := *ev.Kprobe
			k.FunctionName, k.UprobePath, k.UprobeOffset = "", "/usr/lib/libssl.so.3", 0x3a2f0
			c.Kprobe = &k
			out[name+"@process_uprobe_offset"] = &c
		}
	}
	return out
}

// defaultLines encodes every fixture in the default format, with and
// without the arguments array.
func defaultLines() map[string][]byte {
	out := map[string][]byte{}
	for name, ev := range hookFixtures() {
		out[name] = AppendJSON(nil, ev, nodeName, nil)
		out[name+"+arguments_list"] = AppendJSON(nil, ev, nodeName, &Options{ArgumentsList: true})
	}
	return out
}

// writtenMembers returns the members the default format writes, by
// "message.field", and those Tetragon's schema lacks.
func writtenMembers(t *testing.T, s *tetragonschema.Schema) (known, vigil map[string][]string) {
	t.Helper()
	known, vigil = map[string][]string{}, map[string][]string{}
	for name, line := range defaultLines() {
		ms, err := s.Members(line)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, m := range ms {
			k := m.Message + "." + m.Field
			if m.Type == "" {
				vigil[k] = append(vigil[k], m.Path)
			} else {
				known[k] = append(known[k], m.Path)
			}
		}
	}
	return known, vigil
}

// TestEveryMemberIsClassified: each member the default format writes is
// either Tetragon's (same name; its type is checked by the tetragon format
// tests) or listed in vigilMembers, and each listed member is written.
func TestEveryMemberIsClassified(t *testing.T) {
	s := loadSchema(t)
	_, vigil := writtenMembers(t, s)
	listed := map[string]bool{}
	for _, m := range allVigilMembers() {
		k := m.message + "." + m.field
		listed[k] = true
		if _, ok := vigil[k]; !ok {
			t.Errorf("%s is listed as Vigil's own member but no fixture writes it (stale entry, or a fixture is missing)", k)
		}
	}
	var unlisted []string
	for k, paths := range vigil {
		if !listed[k] {
			sort.Strings(paths)
			unlisted = append(unlisted, fmt.Sprintf("%s (at %s)", k, paths[0]))
		}
	}
	sort.Strings(unlisted)
	for _, u := range unlisted {
		t.Errorf("the export writes %s, which Tetragon's schema does not have: add it to vigilMembers (and run TestCompatDoc -update) or rename it to Tetragon's name", u)
	}
}

// TestTetragonFormat: in the tetragon format each fixture parses strictly
// with Tetragon's schema and equals the default encoding without Vigil's
// own members, so nothing the schema can carry is lost. Flows and alerts
// encode to nothing; lost_events becomes rate_limit_info.
func TestTetragonFormat(t *testing.T) {
	s := loadSchema(t)
	opts := &Options{Format: FormatTetragon}
	enc := NewEncoder(opts)
	for name, ev := range hookFixtures() {
		t.Run(name, func(t *testing.T) {
			line := AppendJSON(nil, ev, nodeName, opts)
			if cached := enc.AppendJSON(nil, ev, nodeName); !bytes.Equal(cached, line) {
				t.Errorf("Encoder and AppendJSON differ:\n%s\n%s", cached, line)
			}
			if !Encodable(FormatTetragon, ev.Type) {
				if len(line) != 0 {
					t.Errorf("a %s event, which Tetragon lacks, encoded to %s", ev.Type, line)
				}
				return
			}
			kind, err := s.Check(line)
			if err != nil {
				t.Fatalf("strict Tetragon parse: %v\n%s", err, line)
			}
			want, err := s.Known(AppendJSON(nil, ev, nodeName, nil))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case ev.Type == event.TypeLostEvents:
				want["rate_limit_info"] = map[string]any{"number_of_dropped_process_events": fmt.Sprint(ev.Lost.Count)}
			case ev.Kprobe != nil && ev.Kprobe.Monitor:
				want[kind].(map[string]any)["action"] = "KPROBE_ACTION_POST"
			}
			var got map[string]any
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.UseNumber()
			if err := dec.Decode(&got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("tetragon format is not the default without Vigil's members (-want +got):\n%s", diff)
			}
		})
	}
}

const (
	compatDoc   = "../../docs/tetragon-compat.md"
	compatBegin = "<!-- BEGIN event fields: generated by go test ./exporter/encode -run TestCompatDoc -update -->\n"
	compatEnd   = "<!-- END event fields -->\n"
)

// TestCompatDoc keeps the event-field tables of docs/tetragon-compat.md
// equal to what the schema and the encoder say: every field of Tetragon's
// event messages with whether Vigil writes it, and Vigil's own members.
func TestCompatDoc(t *testing.T) {
	s := loadSchema(t)
	known, _ := writtenMembers(t, s)
	var b strings.Builder
	fmt.Fprintf(&b, "Generated from Tetragon's schema (`%s`) and Vigil's encoder.\n\n", s.Source)
	b.WriteString("Every member of Tetragon's event messages, and whether Vigil writes it (in both formats; the tetragon\n")
	b.WriteString("format writes exactly these). A member Vigil does not write is one it has no data for.\n\n")
	b.WriteString("| message | field | type | Vigil writes it |\n|---|---|---|---|\n")
	for _, m := range s.Fields() {
		w := "no"
		if _, ok := known[m.Message+"."+m.Field]; ok {
			w = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | `%s` | %s |\n", strings.TrimPrefix(m.Message, "tetragon."), m.Field, m.Type, w)
	}
	b.WriteString("\nVigil's own members: written in the default format, left out by `--export-format tetragon`.\n\n")
	b.WriteString("| in | member | what it holds |\n|---|---|---|\n")
	for _, m := range allVigilMembers() {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", strings.TrimPrefix(m.message, "tetragon."), m.field, m.about)
	}
	section := compatBegin + b.String() + compatEnd

	doc, err := os.ReadFile(compatDoc)
	if err != nil {
		t.Fatal(err)
	}
	i, j := bytes.Index(doc, []byte(compatBegin)), bytes.Index(doc, []byte(compatEnd))
	if i < 0 || j < i {
		t.Fatalf("%s: no generated section (%q ... %q)", compatDoc, compatBegin, compatEnd)
	}
	cur := string(doc[i : j+len(compatEnd)])
	if *update {
		out := append(append(append([]byte(nil), doc[:i]...), section...), doc[j+len(compatEnd):]...)
		if err := os.WriteFile(filepath.Clean(compatDoc), out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if diff := cmp.Diff(section, cur); diff != "" {
		t.Errorf("%s is out of date (go test ./exporter/encode -run TestCompatDoc -update) (-want +got):\n%s", compatDoc, diff)
	}
}

// TestKprobeActionsAreTetragons keeps kprobeActions equal to the values of
// Tetragon's KprobeAction enum.
func TestKprobeActionsAreTetragons(t *testing.T) {
	s := loadSchema(t)
	md, err := s.Message("tetragon.ProcessKprobe")
	if err != nil {
		t.Fatal(err)
	}
	values := md.Fields().ByName("action").Enum().Values()
	var want []string
	for i := 0; i < values.Len(); i++ {
		want = append(want, string(values.Get(i).Name()))
	}
	if diff := cmp.Diff(want, kprobeActions[:]); diff != "" {
		t.Errorf("kprobeActions differ from Tetragon's KprobeAction (-schema +encode):\n%s", diff)
	}
}
