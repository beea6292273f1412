package kprobes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TracepointField is one field of a tracepoint's format.
type TracepointField struct {
	Name   string
	Type   string
	Offset uint16
	Size   uint8
	Signed bool
}

// TracepointFormat reads the fields of subsystem/event from tracefs, in
// order (the four common_* fields first).
func TracepointFormat(tracefs, subsystem, event string) ([]TracepointField, error) {
	if tracefs == "" {
		return nil, errors.New("tracefs is not mounted")
	}
	b, err := os.ReadFile(filepath.Join(tracefs, "events", subsystem, event, "format"))
	if err != nil {
		return nil, fmt.Errorf("tracepoint %s/%s: %w", subsystem, event, err)
	}
	var out []TracepointField
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "field:") {
			continue
		}
		var f TracepointField
		for _, part := range strings.Split(line, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), ":")
			if !ok {
				continue
			}
			switch k {
			case "field":
				v = strings.TrimSpace(v)
				i := strings.LastIndexAny(v, " *")
				if i < 0 {
					f.Name = v
				} else {
					f.Type, f.Name = strings.TrimSpace(v[:i+1]), v[i+1:]
				}
				if j := strings.IndexByte(f.Name, '['); j >= 0 {
					f.Type += f.Name[j:]
					f.Name = f.Name[:j]
				}
			case "offset":
				fmt.Sscanf(v, "%d", &f.Offset)
			case "size":
				fmt.Sscanf(v, "%d", &f.Size)
			case "signed":
				f.Signed = strings.TrimSpace(v) == "1"
			}
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("tracepoint %s/%s: no fields in its format", subsystem, event)
	}
	return out, nil
}
