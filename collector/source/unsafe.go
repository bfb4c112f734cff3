package source

import "unsafe"

// unsafePointer returns the address of b's first byte for a raw syscall.
func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }
