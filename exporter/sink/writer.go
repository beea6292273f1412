package sink

import (
	"context"
	"io"
	"time"
)

// Writer writes lines to an io.Writer, such as os.Stdout.
type Writer struct {
	name  string
	w     io.Writer
	hooks Hooks
	errs  *errorLog
}

var _ Sink = (*Writer)(nil)

// NewWriter returns a sink named name writing to w.
func NewWriter(name string, w io.Writer, hooks Hooks) *Writer {
	return &Writer{name: name, w: w, hooks: hooks, errs: newErrorLog(hooks.Log, name)}
}

// Name implements Sink.
func (s *Writer) Name() string { return s.name }

// Write implements Sink. A failed write loses the lines that did not make
// it out whole.
func (s *Writer) Write(_ context.Context, lines []byte, count int) {
	start := time.Now()
	n, err := s.w.Write(lines)
	s.hooks.latency(time.Since(start))
	if err == nil {
		s.hooks.delivered(count)
		s.errs.recovered()
		return
	}
	done, _ := completeLines(lines, n)
	s.hooks.delivered(done)
	s.hooks.lost(ReasonSinkError, count-done)
	s.errs.error(err, "write failed, lines lost", count-done)
}

// Run implements Sink; a writer has no background work.
func (s *Writer) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Close implements Sink. It syncs the writer when it is a file.
func (s *Writer) Close(context.Context) error {
	if f, ok := s.w.(interface{ Sync() error }); ok {
		f.Sync() // stdout may be a pipe, where Sync fails harmlessly
	}
	return nil
}
