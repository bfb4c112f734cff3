package explain

import (
	"strconv"

	"github.com/nfdrop/nfdrop_exporter/collector/source"
)

// ifNames returns "if<index>" for the input and output interface of an NFLOG
// record (empty when absent), in a.ifBuf: valid until the next call. An
// NFLOG capture has interface indexes, not names.
func (a *aggregator) ifNames(data []byte) (in, out []byte) {
	i, o := source.NFLOGRecordInterfaces(data)
	if i != 0 {
		in = strconv.AppendUint(append(a.ifBuf[0][:0], "if"...), uint64(i), 10)
	}
	if o != 0 {
		out = strconv.AppendUint(append(a.ifBuf[1][:0], "if"...), uint64(o), 10)
	}
	return in, out
}
