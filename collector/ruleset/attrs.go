package ruleset

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/nfdrop/nfdrop_exporter/collector/internal/nlmsg"
)

// attr is one netlink attribute; data aliases the message.
type attr struct {
	typ  uint16
	data []byte
}

// attrs are the attributes of one record (a message, an expression), held
// without allocating; a record has far fewer than maxAttrs, and any beyond
// them are not read.
type attrs struct {
	n int
	a [maxAttrs]attr
}

const maxAttrs = 32

var errBadAttr = errors.New("malformed netlink attribute")

// parseAttrs splits a record into its attributes.
func parseAttrs(b []byte) (attrs, error) {
	var out attrs
	a := nlmsg.NewAttrs(b)
	for a.Next() {
		if out.n < maxAttrs {
			out.a[out.n] = attr{typ: a.Type, data: a.Data}
			out.n++
		}
	}
	if a.Bad {
		return attrs{}, errBadAttr
	}
	return out, nil
}

// parseList splits a list (NFTA_LIST_ELEM ..., which can be long) into its
// attributes.
func parseList(b []byte) ([]attr, error) { return appendList(nil, b) }

// appendList is parseList appending to out.
func appendList(out []attr, b []byte) ([]attr, error) {
	a := nlmsg.NewAttrs(b)
	for a.Next() {
		out = append(out, attr{typ: a.Type, data: a.Data})
	}
	if a.Bad {
		return nil, errBadAttr
	}
	return out, nil
}

func (as *attrs) all() []attr { return as.a[:as.n] }

func (as *attrs) get(t uint16) ([]byte, bool) {
	for i := 0; i < as.n; i++ {
		if as.a[i].typ == t {
			return as.a[i].data, true
		}
	}
	return nil, false
}

func (as *attrs) has(t uint16) bool {
	_, ok := as.get(t)
	return ok
}

// str reads a NUL-terminated string attribute, keeping its bytes as they are.
func (as *attrs) str(t uint16) string {
	b, _ := as.get(t)
	return cstring(b)
}

func cstring(b []byte) string { return string(trimNUL(b)) }

// trimNUL cuts b at its first NUL.
func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// sameName says that s is the NUL-terminated name b, without allocating.
func sameName(s string, b []byte) bool { return s == string(trimNUL(b)) }

func (as *attrs) u32(t uint16) (uint32, bool) {
	b, ok := as.get(t)
	if !ok || len(b) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(b), true
}

func (as *attrs) u16(t uint16) (uint16, bool) {
	b, ok := as.get(t)
	if !ok || len(b) != 2 {
		return 0, false
	}
	return binary.BigEndian.Uint16(b), true
}

func (as *attrs) u64(t uint16) (uint64, bool) {
	b, ok := as.get(t)
	if !ok || len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}

func (as *attrs) nested(t uint16) (attrs, error) {
	b, ok := as.get(t)
	if !ok {
		return attrs{}, nil
	}
	return parseAttrs(b)
}

// counter reads a nested NFTA_COUNTER_* pair.
func counterFrom(as *attrs) (*Counter, error) {
	c, err := counterOf(as)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// counterOf is counterFrom without allocating.
func counterOf(as *attrs) (Counter, error) {
	p, okp := as.u64(counterPackets)
	b, okb := as.u64(counterBytes)
	if !okp || !okb {
		return Counter{}, fmt.Errorf("counter without packets and bytes")
	}
	return Counter{Packets: p, Bytes: b}, nil
}

// verdictFrom reads a nested NFTA_DATA_VERDICT.
func verdictFrom(b []byte) (Verdict, error) {
	as, err := parseAttrs(b)
	if err != nil {
		return Verdict{}, err
	}
	code, ok := as.u32(verdictCode)
	if !ok {
		return Verdict{}, fmt.Errorf("verdict without a code")
	}
	return verdictOf(int32(code), as.str(verdictChain)), nil
}

func verdictOf(code int32, chain string) Verdict {
	switch code {
	case codeDrop:
		return Verdict{Kind: Drop}
	case codeAccept:
		return Verdict{Kind: Accept}
	case codeStolen:
		return Verdict{Kind: Stolen}
	case codeContinue, codeBreak:
		return Verdict{Kind: Continue}
	case codeJump:
		return Verdict{Kind: Jump, Chain: chain}
	case codeGoto:
		return Verdict{Kind: Goto, Chain: chain}
	case codeReturn:
		return Verdict{Kind: Return}
	}
	if code >= 0 && code&0xff == codeQueue {
		return Verdict{Kind: Queue, Queue: uint16(uint32(code) >> 16)}
	}
	return Verdict{Kind: Other}
}
