// Package uprobetarget writes a minimal x86-64 executable for uprobe and
// USDT tests: its function Symbol takes its arguments in the registers of
// the C calling convention, as uprobe policies read them, its symbol table
// names it, and a SystemTap SDT note places a USDT probe at its start.
// Tests run it where no compiler is at hand (the test VMs), and the test
// binaries themselves are built without a symbol table.
package uprobetarget

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
)

// Symbol is the probed function. Called as Symbol(a, b, s), it returns
// a+b; the program exits with that status.
const Symbol = "vigil_uprobe_target"

// The program: `TARGET A B STRING` calls Symbol(A, B, STRING), A and B
// being the first digit of their arguments, and exits with the result.
var code = []byte{
	0x48, 0x8b, 0x44, 0x24, 0x10, // mov rax, [rsp+16]: argv[1]
	0x0f, 0xb6, 0x38, // movzx edi, byte [rax]
	0x83, 0xef, 0x30, // sub edi, '0'
	0x48, 0x8b, 0x44, 0x24, 0x18, // mov rax, [rsp+24]: argv[2]
	0x0f, 0xb6, 0x30, // movzx esi, byte [rax]
	0x83, 0xee, 0x30, // sub esi, '0'
	0x48, 0x8b, 0x54, 0x24, 0x20, // mov rdx, [rsp+32]: argv[3]
	0xe8, 0x09, 0x00, 0x00, 0x00, // call target
	0x89, 0xc7, // mov edi, eax
	0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60 (exit)
	0x0f, 0x05, // syscall
	// target:
	0x48, 0x8d, 0x04, 0x37, // lea rax, [rdi+rsi]
	0xc3, // ret
}

// The USDT probe of the executable, at Symbol's first instruction, and its
// arguments as the note describes them: a, b and s in their registers, argc
// on the stack above the return address, and a constant.
const (
	USDTProvider = "vigil"
	USDTName     = "target"
	USDTArgs     = "-4@%edi 8@%rsi 8@%rdx 8@8(%rsp) -2@$-3"
)

// targetOffset is where Symbol starts in code.
const targetOffset = 41

const (
	base     = 0x400000
	codeOff  = 64 + 56 // after the ELF header and the one program header
	strtab   = "\x00" + Symbol + "\x00_start\x00"
	shstrtab = "\x00.text\x00.symtab\x00.strtab\x00.shstrtab\x00.note.stapsdt\x00"
)

// Offset is the file offset of Symbol in the executable Write writes.
const Offset = codeOff + targetOffset

// Write writes the executable to path, mode 0755.
func Write(path string) error {
	var b bytes.Buffer
	le := binary.LittleEndian
	symOff := uint64(codeOff + len(code))
	symOff = (symOff + 7) &^ 7
	syms := []elf.Sym64{
		{},
		{Name: 1, Info: elf.ST_INFO(elf.STB_GLOBAL, elf.STT_FUNC), Shndx: 1, Value: base + Offset, Size: uint64(len(code) - targetOffset)},
		{Name: uint32(2 + len(Symbol)), Info: elf.ST_INFO(elf.STB_GLOBAL, elf.STT_FUNC), Shndx: 1, Value: base + codeOff, Size: targetOffset},
	}
	strOff := symOff + uint64(len(syms))*24
	shstrOff := strOff + uint64(len(strtab))
	noteOff := (shstrOff + uint64(len(shstrtab)) + 3) &^ 3
	note := stapsdtNote(base + Offset)
	shOff := (noteOff + uint64(len(note)) + 7) &^ 7
	binary.Write(&b, le, elf.Header64{
		Ident:     [16]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)},
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(elf.EM_X86_64),
		Version:   uint32(elf.EV_CURRENT),
		Entry:     base + codeOff,
		Phoff:     64,
		Shoff:     shOff,
		Ehsize:    64,
		Phentsize: 56,
		Phnum:     1,
		Shentsize: 64,
		Shnum:     6,
		Shstrndx:  4,
	})
	binary.Write(&b, le, elf.Prog64{
		Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X),
		Off: 0, Vaddr: base, Paddr: base, Filesz: codeOff + uint64(len(code)), Memsz: codeOff + uint64(len(code)), Align: 0x1000,
	})
	b.Write(code)
	b.Write(make([]byte, symOff-uint64(b.Len())))
	binary.Write(&b, le, syms)
	b.WriteString(strtab)
	b.WriteString(shstrtab)
	b.Write(make([]byte, noteOff-uint64(b.Len())))
	b.Write(note)
	b.Write(make([]byte, shOff-uint64(b.Len())))
	binary.Write(&b, le, []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC | elf.SHF_EXECINSTR), Addr: base + codeOff, Off: codeOff, Size: uint64(len(code)), Addralign: 1},
		{Name: 7, Type: uint32(elf.SHT_SYMTAB), Off: symOff, Size: uint64(len(syms)) * 24, Link: 3, Info: 1, Addralign: 8, Entsize: 24},
		{Name: 15, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(strtab)), Addralign: 1},
		{Name: 23, Type: uint32(elf.SHT_STRTAB), Off: shstrOff, Size: uint64(len(shstrtab)), Addralign: 1},
		{Name: 33, Type: uint32(elf.SHT_NOTE), Off: noteOff, Size: uint64(len(note)), Addralign: 4},
	})
	return os.WriteFile(path, b.Bytes(), 0o755)
}

// stapsdtNote is the SystemTap SDT note of a probe at pc, without a
// semaphore or a base section.
func stapsdtNote(pc uint64) []byte {
	le := binary.LittleEndian
	desc := make([]byte, 24)
	le.PutUint64(desc, pc)
	desc = append(desc, USDTProvider+"\x00"+USDTName+"\x00"+USDTArgs+"\x00"...)
	var b bytes.Buffer
	binary.Write(&b, le, [3]uint32{8, uint32(len(desc)), 3})
	b.WriteString("stapsdt\x00")
	b.Write(desc)
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	return b.Bytes()
}
