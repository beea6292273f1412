package apiauth

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// recheck is how often a file's modification time is looked at again.
const recheck = time.Second

// watched is a value parsed from files, parsed again when one of them
// changes (size or modification time). A file that changed into something
// that does not parse keeps the last good value; the error is returned
// until the files are good again.
type watched[T any] struct {
	files []string
	parse func(data [][]byte) (T, error)

	mu      sync.Mutex
	checked time.Time
	stamps  []stamp
	val     T
	err     error
	now     func() time.Time
}

type stamp struct {
	size int64
	mod  time.Time
}

func newWatched[T any](parse func([][]byte) (T, error), files ...string) (*watched[T], error) {
	w := &watched[T]{files: files, parse: parse, now: time.Now}
	if err := w.load(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *watched[T]) load() error {
	data := make([][]byte, len(w.files))
	stamps := make([]stamp, len(w.files))
	for i, f := range w.files {
		st, err := os.Stat(f)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		data[i], stamps[i] = b, stamp{st.Size(), st.ModTime()}
	}
	v, err := w.parse(data)
	if err != nil {
		return err
	}
	w.val, w.stamps = v, stamps
	return nil
}

// get returns the current value, re-reading the files when they changed.
func (w *watched[T]) get() (T, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	if now.Sub(w.checked) < recheck && w.err == nil {
		return w.val, nil
	}
	w.checked = now
	changed := false
	for i, f := range w.files {
		st, err := os.Stat(f)
		if err != nil || st.Size() != w.stamps[i].size || !st.ModTime().Equal(w.stamps[i].mod) {
			changed = true
			break
		}
	}
	if changed {
		w.err = w.load()
	}
	return w.val, w.err
}

func parseToken(path string) func([][]byte) ([]byte, error) {
	return func(d [][]byte) ([]byte, error) {
		t := bytes.TrimSpace(d[0])
		if len(t) == 0 {
			return nil, fmt.Errorf("token file %s is empty", path)
		}
		if bytes.ContainsAny(t, " \t\r\n") {
			return nil, fmt.Errorf("token file %s: the token must be one word", path)
		}
		return t, nil
	}
}

func parseKeyPair(cert, key string) func([][]byte) (*tls.Certificate, error) {
	return func(d [][]byte) (*tls.Certificate, error) {
		c, err := tls.X509KeyPair(d[0], d[1])
		if err != nil {
			return nil, fmt.Errorf("certificate %s with key %s: %w", cert, key, err)
		}
		return &c, nil
	}
}

func parsePool(path string) func([][]byte) (*x509.CertPool, error) {
	return func(d [][]byte) (*x509.CertPool, error) {
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(d[0]) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
		}
		return p, nil
	}
}

var errNoCert = errors.New("no certificate configured")
