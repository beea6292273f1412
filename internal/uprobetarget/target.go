//go:build amd64

// Package uprobetarget is a user-space function for uprobe tests: Target
// takes its arguments in the registers of the C calling convention, which
// is what a uprobe policy's arguments are read from, so a test binary can
// probe itself without a C compiler.
package uprobetarget

import "unsafe"

// Symbol is Target's name in the ELF symbol table of a binary that links
// this package.
const Symbol = "github.com/vigilsec/vigil/internal/uprobetarget.Target"

// call passes a, b and s to Target in rdi, rsi and rdx and returns what it
// returns (a+b).
func call(a, b uint64, s unsafe.Pointer) uint64

// Call calls Target(a, b, s) with s as a NUL-terminated C string.
func Call(a, b uint64, s string) uint64 {
	buf := append([]byte(s), 0)
	return call(a, b, unsafe.Pointer(&buf[0]))
}
