package netns

// The syscall package lists no SYS_SETNS for amd64.
const sysSetns = 308
