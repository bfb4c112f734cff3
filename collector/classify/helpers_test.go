package classify

import "fmt"

func fmtPorts(p []uint16) string { return fmt.Sprint(p) }
