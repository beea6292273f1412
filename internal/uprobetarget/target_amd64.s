#include "textflag.h"

// func call(a, b uint64, s unsafe.Pointer) uint64
TEXT ·call(SB), NOSPLIT, $0-32
	MOVQ a+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ s+16(FP), DX
	CALL ·Target(SB)
	MOVQ AX, ret+24(FP)
	RET

// Target(a, b, s) returns a+b, with the C calling convention; s is read by
// the probe only.
TEXT ·Target(SB), NOSPLIT|NOFRAME, $0-0
	MOVQ DI, AX
	ADDQ SI, AX
	RET
