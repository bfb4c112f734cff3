package netns

import "syscall"

// setns moves the calling thread into the network namespace fd refers to.
func setns(fd int) error {
	if _, _, errno := syscall.Syscall(sysSetns, uintptr(fd), syscall.CLONE_NEWNET, 0); errno != 0 {
		return errno
	}
	return nil
}
