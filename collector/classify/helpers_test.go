package classify

import (
	"fmt"
	"strconv"
)

func fmtPorts(p []uint16) string { return fmt.Sprint(p) }
func itoa(i int) string          { return strconv.Itoa(i) }
