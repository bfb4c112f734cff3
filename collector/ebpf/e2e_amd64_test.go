package ebpf

import "golang.org/x/sys/unix"

// amd64 also has the older epoll_wait, which Go uses there.
func init() { epollWaits = append(epollWaits, unix.SYS_EPOLL_WAIT) }
