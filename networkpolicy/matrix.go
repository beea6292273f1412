package networkpolicy

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
)

// MatrixPort is one port of a connectivity matrix: its number and protocol
// and the text the user wrote for it (printed as given).
type MatrixPort struct {
	Text     string
	Port     uint16
	Protocol Protocol
}

// ParseMatrixPorts parses ports as ParsePort does.
func ParseMatrixPorts(list []string) ([]MatrixPort, error) {
	out := make([]MatrixPort, 0, len(list))
	for _, s := range list {
		port, proto, err := ParsePort(s)
		if err != nil {
			return nil, err
		}
		out = append(out, MatrixPort{Text: s, Port: port, Protocol: proto})
	}
	return out, nil
}

// sideKey names one direction's decision: pods that share identities share
// their decisions.
type sideKey struct {
	local, remote uint32
	dir           Direction
}

// matrixLimits bound what a matrix remembers per port: which decision each
// identity pair gets (sides pairs), each distinct decision once, and the
// JSON of decisions (jsonBytes). Past either bound the memory is cleared,
// and what is needed again is decided or encoded again.
type matrixLimits struct {
	sides, jsonBytes int
}

var defaultMatrixLimits = matrixLimits{sides: 1 << 18, jsonBytes: 32 << 20}

// flowDecider decides the flows of one port like Engine.Check. Pods that
// share identities share decisions, and many identity pairs share one
// decision (the same rules decide): each is made, and encoded, once.
type flowDecider struct {
	e      *Engine
	proto  Protocol
	port   uint16
	limits matrixLimits
	sides  map[sideKey]int32
	// decisions are the distinct decisions, by their content.
	decisions []matrixDecision
	byContent map[string]int32
	jsonBytes int
	keyBuf    []byte
}

type matrixDecision struct {
	Decision
	json []byte // encoded on first use
}

func newFlowDecider(e *Engine, p MatrixPort, limits matrixLimits) *flowDecider {
	return &flowDecider{e: e, proto: p.Protocol, port: p.Port, limits: limits, sides: map[sideKey]int32{}, byContent: map[string]int32{}}
}

func (f *flowDecider) decide(k sideKey) int32 {
	if i, ok := f.sides[k]; ok {
		return i
	}
	d := f.e.Decide(k.local, k.dir, k.remote, f.proto, f.port)
	f.keyBuf = append(f.keyBuf[:0], byte(d.Verdict), byte(d.Reason))
	for _, id := range d.Rules {
		f.keyBuf = binary.LittleEndian.AppendUint32(f.keyBuf, id)
	}
	i, ok := f.byContent[string(f.keyBuf)]
	if !ok {
		i = int32(len(f.decisions))
		f.decisions = append(f.decisions, matrixDecision{Decision: d})
		f.byContent[string(f.keyBuf)] = i
	}
	f.sides[k] = i
	return i
}

// check decides a flow as Engine.Check does: the egress side at a source
// pod, the ingress side at a destination pod (-1 where there is none).
func (f *flowDecider) check(from, to *Endpoint) (v Verdict, egress, ingress int32) {
	// Bounded memory: forgotten between flows, so that the indices of a
	// flow's two sides stay valid.
	if len(f.sides) >= f.limits.sides-1 {
		clear(f.sides)
		clear(f.byContent)
		f.decisions, f.jsonBytes = f.decisions[:0], 0
	}
	v, egress, ingress = Allow, -1, -1
	if from.Pod != nil {
		egress = f.decide(sideKey{from.Local, to.Identity, Egress})
		v = combineVerdict(v, f.decisions[egress].Verdict)
	}
	if to.Pod != nil {
		ingress = f.decide(sideKey{to.Local, from.Identity, Ingress})
		v = combineVerdict(v, f.decisions[ingress].Verdict)
	}
	return v, egress, ingress
}

// sideJSON is the JSON of decision i, indented as a field of a flow in the
// matrix.
func (f *flowDecider) sideJSON(i int32) ([]byte, error) {
	md := &f.decisions[i]
	if md.json != nil {
		return md.json, nil
	}
	js, err := json.MarshalIndent(f.e.side(md.Decision).report(), "      ", "  ")
	if err != nil {
		return nil, err
	}
	if f.jsonBytes+len(js) > f.limits.jsonBytes {
		for j := range f.decisions {
			f.decisions[j].json = nil
		}
		f.jsonBytes = 0
	}
	md.json = js
	f.jsonBytes += len(js)
	return js, nil
}

// combine is the verdict of a flow from its sides: both must let it through.
func combine(sides ...*Side) Verdict {
	v := Allow
	for _, s := range sides {
		if s != nil {
			v = combineVerdict(v, s.Verdict)
		}
	}
	return v
}

// combineVerdict adds one side's verdict to a flow's: a denial wins, then
// an audit.
func combineVerdict(flow, side Verdict) Verdict {
	switch {
	case side == Deny:
		return Deny
	case side == Audit && flow == Allow:
		return Audit
	}
	return flow
}

// matrixCell is a verdict in the table.
func matrixCell(v Verdict) string {
	switch v {
	case Allow:
		return "."
	case Audit:
		return "A"
	}
	return "X"
}

// MatrixLegend is the last line of the text matrix.
const MatrixLegend = ". allowed   X denied   A audit (allowed; an audit-mode policy would drop it)   - same pod"

// WriteMatrix prints one table per port of the verdicts on every flow from
// each pod (rows) to each other pod (columns). Tables are written as they
// are decided: memory holds one table's cells, never the flows.
func (e *Engine) WriteMatrix(w io.Writer, ports []MatrixPort) error {
	return e.writeMatrix(w, ports, defaultMatrixLimits)
}

func (e *Engine) writeMatrix(w io.Writer, ports []MatrixPort, limits matrixLimits) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	pods := e.Pods()
	names := make([]string, len(pods))
	for i := range pods {
		names[i] = pods[i].String()
	}
	// One tabwriter per table: its cells are aligned within the table, and
	// what it buffers is flushed before the next one.
	for i, p := range ports {
		if i > 0 {
			bw.WriteByte('\n')
		}
		tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "%s FROM \\ TO", p.Text)
		for _, n := range names {
			fmt.Fprintf(tw, "\t%s", n)
		}
		fmt.Fprintln(tw)
		f := newFlowDecider(e, p, limits)
		row := make([]byte, 0, 2*len(pods)+64)
		for a := range pods {
			row = append(row[:0], names[a]...)
			for b := range pods {
				cell := "-"
				if a != b {
					v, _, _ := f.check(&pods[a], &pods[b])
					cell = matrixCell(v)
				}
				row = append(row, '\t')
				row = append(row, cell...)
			}
			row = append(row, '\n')
			if _, err := tw.Write(row); err != nil {
				return err
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(bw, "\n%s\n", MatrixLegend)
	return bw.Flush()
}

// WriteMatrixJSON writes the matrix as one JSON object {"pods", "ports",
// "flows"}, indented by two spaces, each flow as FlowReport encodes (the
// bytes of json.Encoder with SetIndent("", "  ")). Flows are written as
// they are decided; each distinct decision of a side is encoded once.
func (e *Engine) WriteMatrixJSON(w io.Writer, ports []MatrixPort) error {
	return e.writeMatrixJSON(w, ports, defaultMatrixLimits)
}

func (e *Engine) writeMatrixJSON(w io.Writer, ports []MatrixPort, limits matrixLimits) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	pods := e.Pods()
	names := make([]string, len(pods))
	for i := range pods {
		names[i] = pods[i].String()
	}
	texts := make([]string, len(ports))
	for i, p := range ports {
		texts[i] = p.Text
	}
	bw.WriteString("{\n  \"pods\": ")
	writeJSONStrings(bw, names)
	bw.WriteString(",\n  \"ports\": ")
	writeJSONStrings(bw, texts)
	bw.WriteString(",\n  \"flows\": [")
	first := true
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = jsonString(n)
	}
	verdicts := map[Verdict]string{}
	for _, v := range []Verdict{Allow, Deny, Audit} {
		verdicts[v] = jsonString(v.String())
	}
	for _, p := range ports {
		f := newFlowDecider(e, p, limits)
		head := fmt.Sprintf(",\n      \"port\": %d,\n      \"protocol\": %s,\n      \"verdict\": ", p.Port, jsonString(p.Protocol.String()))
		for a := range pods {
			for b := range pods {
				if a == b {
					continue
				}
				v, egress, ingress := f.check(&pods[a], &pods[b])
				if first {
					bw.WriteString("\n    {\n      \"from\": ")
					first = false
				} else {
					bw.WriteString(",\n    {\n      \"from\": ")
				}
				bw.WriteString(quoted[a])
				bw.WriteString(",\n      \"to\": ")
				bw.WriteString(quoted[b])
				bw.WriteString(head)
				bw.WriteString(verdicts[v])
				if err := f.writeSide(bw, "egress", egress); err != nil {
					return err
				}
				if err := f.writeSide(bw, "ingress", ingress); err != nil {
					return err
				}
				bw.WriteString("\n    }")
			}
		}
	}
	if first {
		bw.WriteString("]\n}\n")
	} else {
		bw.WriteString("\n  ]\n}\n")
	}
	return bw.Flush()
}

// writeSide writes one side of a flow as a field of the flow object.
func (f *flowDecider) writeSide(w *bufio.Writer, key string, i int32) error {
	if i < 0 {
		return nil
	}
	js, err := f.sideJSON(i)
	if err != nil {
		return err
	}
	w.WriteString(",\n      \"")
	w.WriteString(key)
	w.WriteString("\": ")
	_, err = w.Write(js)
	return err
}

// writeJSONStrings writes a list of strings as json.Encoder indents it one
// level deep.
func writeJSONStrings(w *bufio.Writer, list []string) {
	if len(list) == 0 {
		w.WriteString("[]")
		return
	}
	w.WriteString("[")
	for i, s := range list {
		if i > 0 {
			w.WriteString(",")
		}
		w.WriteString("\n    ")
		w.WriteString(jsonString(s))
	}
	w.WriteString("\n  ]")
}

// jsonString is s as encoding/json writes it (HTML characters escaped).
func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		return strconv.Quote(s)
	}
	return string(b)
}
