package harness

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Metrics are the samples of one Prometheus text exposition, by series
// (name with its labels, as exposed).
type Metrics map[string]float64

// ParseMetrics reads the Prometheus text format: comments are skipped, each
// other line is `series value [timestamp]`.
func ParseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] == '#' {
			continue
		}
		// The value follows the series: a name, with labels in braces
		// (which may hold spaces) or without.
		var series, rest string
		if i := strings.IndexByte(t, '{'); i >= 0 && i < strings.IndexAny(t+" ", " \t") {
			end := strings.LastIndexByte(t, '}')
			if end < i {
				return nil, fmt.Errorf("metrics line %d: unclosed labels: %q", line, t)
			}
			series, rest = t[:end+1], t[end+1:]
		} else {
			series, rest, _ = strings.Cut(t, " ")
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("metrics line %d: no value: %q", line, t)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: value %q: %w", line, fields[0], err)
		}
		m[series] = v
	}
	return m, sc.Err()
}

// Sum adds the samples of metric name whose labels include every
// key="value" pair of match.
func (m Metrics) Sum(name string, match ...string) float64 {
	var s float64
	for series, v := range m {
		n, labels, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		ok := true
		for _, want := range match {
			if !strings.Contains(labels, want) {
				ok = false
				break
			}
		}
		if ok {
			s += v
		}
	}
	return s
}

// Sub returns m-before for every series of m.
func (m Metrics) Sub(before Metrics) Metrics {
	out := Metrics{}
	for k, v := range m {
		out[k] = v - before[k]
	}
	return out
}

// scrape fetches addr's /metrics.
func scrape(ctx context.Context, addr string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape agent metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape agent metrics: %s", resp.Status)
	}
	return ParseMetrics(resp.Body)
}

// EventCounts are what the agent's metrics say of its event stream.
type EventCounts struct {
	// Produced are events that reached the exporter (all types).
	Produced float64
	// Delivered are lines the file sink wrote.
	Delivered float64
	// Lost by reason: ringbuf_full (never reached user space),
	// queue_full, rate_limited, filtered, sink_error.
	Lost map[string]float64
}

// LostTotal sums the losses of every reason.
func (e EventCounts) LostTotal() float64 {
	var t float64
	for _, v := range e.Lost {
		t += v
	}
	return t
}

func eventCounts(m Metrics) EventCounts {
	e := EventCounts{
		Produced:  m.Sum("vigil_events_total"),
		Delivered: m.Sum("vigil_export_sink_lines_total", `sink="file"`),
		Lost:      map[string]float64{},
	}
	for series, v := range m {
		name, labels, _ := strings.Cut(series, "{")
		if name != "vigil_events_lost_total" {
			continue
		}
		reason := labelValue(labels, "reason")
		e.Lost[reason] += v
	}
	return e
}

func labelValue(labels, key string) string {
	i := strings.Index(labels, key+`="`)
	if i < 0 {
		return ""
	}
	rest := labels[i+len(key)+2:]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return rest[:j]
}
