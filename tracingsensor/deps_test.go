package tracingsensor

import (
	"io"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/process"
)

// sensorDeps gives what New needs beside its configuration: a process
// sensor (closed when the test ends), a process cache and a silent logger.
func sensorDeps(tb testing.TB, f *kprobes.Features) (*process.Sensor, *process.Cache, *logrus.Logger) {
	tb.Helper()
	ps, err := process.NewSensor(nil, f)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ps.Close() })
	cache, err := process.NewCache(process.Config{NodeName: "test"})
	if err != nil {
		tb.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	return ps, cache, log
}
