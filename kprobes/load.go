package kprobes

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// VerifierHint makes a verifier rejection print the end of its log, which
// names the failing instruction.
func VerifierHint(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("%+v", ve)
	}
	return err
}

// ReplaceSet makes the keys of the set map m (values are one byte) exactly
// keys. New keys are inserted before stale ones are removed, so a key
// present in both versions is never missing.
func ReplaceSet[K comparable](m *ebpf.Map, keys []K) error {
	want := make(map[K]bool, len(keys))
	one := uint8(1)
	for _, k := range keys {
		want[k] = true
		if err := m.Put(k, one); err != nil {
			return err
		}
	}
	var stale []K
	var k K
	var v uint8
	it := m.Iterate()
	for it.Next(&k, &v) {
		if !want[k] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}
