// Package observer reads the kernel's event ring buffer and dispatches each
// record, by its opcode byte, to the handler registered for it. It owns the
// reader's lifecycle: Run returns when its context ends, after closing the
// reader, and every record it could not dispatch is counted.
package observer
