package explain

import (
	"encoding/binary"
	"strconv"

	"github.com/nfdrop/nfdrop_exporter/collector/internal/nlmsg"
)

// NFULA_IFINDEX_INDEV / OUTDEV: an NFLOG capture has interface indexes, not names.
const (
	attrIndev  = 4
	attrOutdev = 5
)

// ifNames returns "if<index>" for the input and output interface of an NFLOG
// record (empty when absent), in a.ifBuf: valid until the next call.
func (a *aggregator) ifNames(data []byte) (in, out []byte) {
	if len(data) < 8 {
		return nil, nil
	}
	attrs := nlmsg.NewAttrs(data[4:])
	// the TLV headers are in the writer's byte order; no type is above 255
	attrs.Swapped = binary.NativeEndian.Uint16(data[6:])&nlmsg.TypeMask > 0xff
	for attrs.Next() {
		if len(attrs.Data) < 4 {
			continue
		}
		switch attrs.Type {
		case attrIndev:
			in = strconv.AppendUint(append(a.ifBuf[0][:0], "if"...), uint64(binary.BigEndian.Uint32(attrs.Data)), 10)
		case attrOutdev:
			out = strconv.AppendUint(append(a.ifBuf[1][:0], "if"...), uint64(binary.BigEndian.Uint32(attrs.Data)), 10)
		}
	}
	return in, out
}
