package abi

import (
	"crypto/sha256"
	"encoding/hex"
)

// Object is one of the BPF objects built into the binary.
type Object struct {
	// Name is the object's file name, for example "process_x86_bpfel.o".
	Name string `json:"name"`
	// SHA256 is the hash of its bytes, as sha256sum prints it.
	SHA256 string `json:"sha256"`
	Size   int    `json:"size"`
}

// Objects lists the embedded BPF objects with their hashes, for `vigil
// version` and bug reports: two binaries with the same hashes run the
// same BPF programs.
func Objects() []Object {
	list := []struct {
		name string
		b    []byte
	}{
		{"dnsvis_x86_bpfel.o", _DnsvisBytes},
		{"flow_x86_bpfel.o", _FlowBytes},
		{"generic_x86_bpfel.o", _GenericBytes},
		{"netpol_x86_bpfel.o", _NetpolBytes},
		{"process_x86_bpfel.o", _ProcessBytes},
	}
	out := make([]Object, len(list))
	for i, o := range list {
		sum := sha256.Sum256(o.b)
		out[i] = Object{Name: o.name, SHA256: hex.EncodeToString(sum[:]), Size: len(o.b)}
	}
	return out
}
