package netns

// The syscall package lists no SYS_SETNS for 386.
const sysSetns = 346
