//go:build linux && !amd64 && !386

package netns

import "syscall"

const sysSetns = syscall.SYS_SETNS
