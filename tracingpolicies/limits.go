package tracingpolicies

import (
	"math"
	"time"
)

// Limits of the policy language. The parser enforces them, the compiler
// sizes the kernel maps from them, and docs/tracing-policy.md lists them.
// Each is at least as generous as Tetragon's.
const (
	// MaxSelectorsPerHook is the number of selectors of one hook
	// (Tetragon: 5).
	MaxSelectorsPerHook = 5
	// MaxMatchArgsPerSelector is the number of matchArgs entries of one
	// selector (Tetragon: 5).
	MaxMatchArgsPerSelector = 5
	// MaxMatchReturnArgsPerSelector is the number of matchReturnArgs
	// entries of one selector.
	MaxMatchReturnArgsPerSelector = 1
	// MaxValuesPerFilter is the number of values of one matchArgs,
	// matchReturnArgs, matchBinaries, matchPIDs, matchNamespaces or
	// matchCapabilities entry (Tetragon: 4 for most, unlimited for
	// strings kept in maps).
	MaxValuesPerFilter = 64
	// MaxEqualValueLen is the length in bytes of a string compared with
	// Equal or NotEqual, and of a matchBinaries In or NotIn path: the kernel
	// keeps set keys of 252 bytes, a terminating NUL included (Tetragon:
	// 255 for binaries).
	MaxEqualValueLen = 251
	// MaxPrefixValueLen is the length in bytes of a Prefix or NotPrefix
	// value (Tetragon: 256).
	MaxPrefixValueLen = 252
	// MaxPostfixValueLen is the length in bytes of a Postfix or NotPostfix
	// value: the kernel compares the last 128 bytes (Tetragon: 128).
	MaxPostfixValueLen = 128
	// MaxBinaryFiltersPerSelector is the number of matchBinaries entries
	// of one selector (Tetragon: 1).
	MaxBinaryFiltersPerSelector = 2
	// MaxPIDFiltersPerSelector is the number of matchPIDs entries of one
	// selector.
	MaxPIDFiltersPerSelector = 4
	// MaxNamespaceFiltersPerSelector is the number of matchNamespaces
	// entries of one selector: one per namespace kind (Tetragon: 10).
	MaxNamespaceFiltersPerSelector = 10
	// MaxCapabilityFiltersPerSelector is the number of matchCapabilities
	// entries of one selector: one per capability set (Tetragon: 1).
	MaxCapabilityFiltersPerSelector = 3
	// MaxActionsPerSelector is the number of matchActions entries of one
	// selector (Tetragon: 3).
	MaxActionsPerSelector = 3
	// MaxArgsPerHook is the number of args of one hook (Tetragon: 5).
	MaxArgsPerHook = 6
	// MaxArgIndex is the highest parameter index a kprobe, syscall or LSM
	// hook argument may read: the six argument registers.
	MaxArgIndex = 5
	// MaxTracepointFieldIndex is the highest tracepoint field index.
	MaxTracepointFieldIndex = 63
	// MaxTags is the number of tags of one hook (Tetragon: 16).
	MaxTags = 16
	// MaxTagLen is the length in bytes of one tag.
	MaxTagLen = 128
	// MaxMessageLen is the length in bytes of a hook's message (Tetragon:
	// 256).
	MaxMessageLen = 256
	// MaxLabelLen is the length in bytes of an argument's or selector's
	// label.
	MaxLabelLen = 128
	// MaxListValues is the number of values of one entry of spec.lists.
	MaxListValues = 512
	// MaxErrno is the largest errno an Override may return (as -MaxErrno).
	MaxErrno = 4095
	// MaxSignal is the highest signal number (SIGRTMAX).
	MaxSignal = 64
)

// MaxRateLimit is the longest rateLimit of a Post action: the period is kept
// in milliseconds in 32 bits.
const MaxRateLimit = time.Duration(math.MaxUint32) * time.Millisecond

// maxValueLen returns the longest string value a string operator accepts.
func maxValueLen(op Operator) int {
	switch op {
	case OpPrefix, OpNotPrefix:
		return MaxPrefixValueLen
	case OpPostfix, OpNotPostfix:
		return MaxPostfixValueLen
	}
	return MaxEqualValueLen
}

// maxBinaryLen returns the longest path a matchBinaries operator accepts.
func maxBinaryLen(op BinaryOperator) int {
	switch op {
	case BinPrefix, BinNotPrefix:
		return MaxPrefixValueLen
	case BinPostfix, BinNotPostfix:
		return MaxPostfixValueLen
	}
	return MaxEqualValueLen
}
