package ruleset

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
)

// ruleDecoder turns a rule's expressions into Terms, statements and a
// verdict.
//
// Expressions come in three kinds: loads (payload, meta, ct, bitwise, ...)
// write registers; checks (cmp, range, lookup, an xtables match) end the
// rule's evaluation for a packet that fails them; statements (counter, log,
// verdicts, targets, setters) act. A term is the loads since the previous
// term plus the check that reads them; loads that a statement consumes
// instead (ct mark set meta mark) belong to no term.
type ruleDecoder struct {
	d       *decoder
	t       *Table
	r       *Rule
	pending []Expr // loads not yet closed by a check

	limited        bool // a rate limit has been seen
	counterTerms   int  // len(Terms) when the counter was seen
	counterLimited bool
	counterObj     string // name of a named counter object
	at             int    // index in r.Exprs of the expression being decoded
}

func (rd *ruleDecoder) decode(list []byte) error {
	elems, err := appendList(rd.d.list[:0], list)
	if err != nil {
		return err
	}
	rd.d.list = elems
	n := 0
	for _, el := range elems {
		if el.typ == listElem {
			n++
		}
	}
	if n > 0 {
		rd.r.Exprs = make([]Expr, 0, n)
	}
	// Terms are collected in a buffer of the decoder and copied once.
	rd.r.Terms = rd.d.terms[:0]
	for _, el := range elems {
		if el.typ != listElem {
			continue
		}
		as, err := parseAttrs(el.data)
		if err != nil {
			return err
		}
		nb, _ := as.get(exprName)
		name := exprNameOf(nb)
		data, _ := as.get(exprData)
		e := Expr{Name: name, Data: data}
		rd.at = len(rd.r.Exprs)
		rd.r.Exprs = append(rd.r.Exprs, e)
		if err := rd.expr(e); err != nil {
			return fmt.Errorf("%s expression: %w", name, err)
		}
	}
	r := rd.r
	rd.d.terms = r.Terms
	r.Terms = nil
	if len(rd.d.terms) > 0 {
		r.Terms = slices.Clone(rd.d.terms)
	}
	if r.Counter != nil {
		r.CounterExact = rd.counterTerms == len(r.Terms) && rd.counterLimited == rd.limited
	}
	return nil
}

// exprNames are the expressions the kernel knows, so that decoding a rule
// does not allocate their names.
var exprNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"payload", "meta", "ct", "exthdr", "bitwise", "byteorder", "fib", "rt", "socket",
		"numgen", "hash", "osf", "xfrm", "inner", "tunnel", "immediate", "cmp", "range", "lookup", "match",
		"target", "log", "limit", "counter", "objref", "dynset", "reject", "queue", "nat", "masq", "redir",
		"synproxy", "quota", "connlimit", "notrack", "dup", "fwd", "tproxy", "flow_offload", "secmark",
		"cthelper", "ctexpect", "cttimeout", "last", "synproxy_obj"} {
		m[n] = n
	}
	return m
}()

// exprNameOf reads an expression's NUL-terminated name.
func exprNameOf(b []byte) string {
	b = trimNUL(b)
	if n, ok := exprNames[string(b)]; ok {
		return n
	}
	return string(b)
}

// setVerdict keeps the first terminal verdict of the rule.
func (rd *ruleDecoder) setVerdict(v Verdict) {
	if rd.r.Verdict.Kind == Continue {
		rd.r.Verdict = v
	}
}

func (rd *ruleDecoder) term(t string) {
	rd.r.Terms = append(rd.r.Terms, t)
	rd.pending = rd.pending[:0]
}

// check closes the pending loads with e into a term.
func (rd *ruleDecoder) check(e Expr) error {
	rd.pending = append(rd.pending, e)
	t, err := rd.canonical(rd.pending)
	if err != nil {
		return err
	}
	rd.term(t)
	return nil
}

func (rd *ruleDecoder) expr(e Expr) error {
	as, err := parseAttrs(e.Data)
	if err != nil {
		return err
	}
	switch e.Name {
	case "payload", "meta", "ct", "exthdr":
		if as.has(setterReg[e.Name]) {
			rd.pending = rd.pending[:0] // a setter: payload/meta/ct/exthdr set
			return nil
		}
		rd.pending = append(rd.pending, e)
	case "bitwise", "byteorder", "fib", "rt", "socket", "numgen", "hash", "osf", "xfrm", "inner", "tunnel":
		rd.pending = append(rd.pending, e)
	case "immediate":
		dreg, _ := as.u32(immediateDreg)
		if dreg != 0 {
			rd.pending = append(rd.pending, e) // a value for a setter or a compare
			return nil
		}
		data, err := as.nested(immediateData)
		if err != nil {
			return err
		}
		vb, ok := data.get(dataVerdict)
		if !ok {
			return fmt.Errorf("immediate to the verdict register without a verdict")
		}
		v, err := verdictFrom(vb)
		if err != nil {
			return err
		}
		rd.setVerdict(v)
	case "cmp", "range":
		return rd.check(e)
	case "lookup":
		if dreg, ok := as.u32(lookupDreg); ok && dreg == 0 {
			return rd.verdictMap(&as)
		}
		return rd.check(e)
	case "match":
		return rd.xtMatch(&as)
	case "target":
		rd.pending = rd.pending[:0]
		return rd.xtTarget(&as)
	case "log":
		l := Log{Kind: LogNFT, Before: len(rd.r.Terms), Sampled: rd.limited, Prefix: as.str(logPrefix)}
		if g, ok := as.u16(logGroup); ok {
			l.NFLOG, l.Group = true, g
		}
		rd.r.Logs = append(rd.r.Logs, l)
	case "limit":
		flags, _ := as.u32(limitFlags)
		rd.rateLimit(&RateLimit{Kind: "limit", Over: flags&limitFlagInv != 0, Text: limitText(&as)})
	case "counter":
		c, err := counterFrom(&as)
		if err != nil {
			return err
		}
		rd.counter(c)
	case "objref":
		return rd.objref(&as)
	case "dynset":
		rd.pending = rd.pending[:0]
		if rd.dynsetLimits(&as) {
			rd.rateLimit(&RateLimit{Kind: "meter"})
		} else {
			rd.r.Stateful = true // add/update can fail when the set is full
		}
	case "reject":
		rd.pending = rd.pending[:0]
		rd.setVerdict(Verdict{Kind: Reject})
	case "queue":
		rd.pending = rd.pending[:0]
		n, _ := as.u16(queueNum)
		rd.setVerdict(Verdict{Kind: Queue, Queue: n})
	case "nat", "masq", "redir":
		rd.pending = rd.pending[:0]
		rd.setVerdict(Verdict{Kind: NAT})
	case "synproxy":
		rd.pending = rd.pending[:0]
		rd.setVerdict(Verdict{Kind: Stolen})
	case "quota", "connlimit":
		rd.r.Stateful = true
		return rd.check(e)
	case "notrack", "dup", "fwd", "tproxy", "flow_offload", "secmark", "cthelper", "ctexpect", "cttimeout", "last", "synproxy_obj":
		rd.pending = rd.pending[:0]
	default:
		// An expression this reader does not know may be a check: it
		// becomes a term, so that the rule never looks broader than it is.
		return rd.check(e)
	}
	return nil
}

// setterReg is the source-register attribute that makes a load expression
// a setter.
var setterReg = map[string]uint16{"payload": payloadSreg, "meta": metaSreg, "ct": ctSreg, "exthdr": exthdrSreg}

func (rd *ruleDecoder) rateLimit(l *RateLimit) {
	if rd.r.RateLimit == nil {
		rd.r.RateLimit = l
	}
	rd.limited = true
}

func (rd *ruleDecoder) counter(c *Counter) {
	if rd.r.Counter == nil {
		rd.r.Counter = c
		rd.r.counterAt = rd.at + 1
		rd.counterTerms, rd.counterLimited = len(rd.r.Terms), rd.limited
	}
}

func (rd *ruleDecoder) objref(as *attrs) error {
	rd.pending = rd.pending[:0]
	if as.has(objrefSetName) {
		rd.r.Stateful = true // an object map: which object depends on the packet
		return nil
	}
	typ, _ := as.u32(objrefType)
	name := as.str(objrefName)
	k := setKey{tableKey{rd.t.Family, rd.t.Name}, name}
	switch typ {
	case objectCounter:
		if c := rd.d.counters[k]; c != nil {
			cc := *c
			rd.counter(&cc)
			rd.counterObj = name
		}
	case objectLimit:
		rd.rateLimit(&RateLimit{Kind: "limit object", Text: rd.d.limits[k]})
	case objectQuota, objectConnlim:
		rd.r.Stateful = true
		rd.term("objref:" + uitoa(uint64(typ)) + ":" + Printable(name))
	}
	return nil
}

// dynsetLimits says whether a dynset carries a limit (a meter: nft's
// "update @s { ip saddr limit rate ... }").
func (rd *ruleDecoder) dynsetLimits(as *attrs) bool {
	found := false
	visit := func(b []byte) {
		es, err := parseAttrs(b)
		if err != nil {
			return
		}
		if es.str(exprName) == "limit" {
			found = true
		}
	}
	if b, ok := as.get(dynsetExpr); ok {
		visit(b)
	}
	if b, ok := as.get(dynsetExprs); ok {
		if list, err := parseList(b); err == nil {
			for _, a := range list {
				visit(a.data)
			}
		}
	}
	return found
}

// verdictMap records a lookup whose result is the verdict.
func (rd *ruleDecoder) verdictMap(as *attrs) error {
	name := as.str(lookupSet)
	m := &VerdictMap{Set: name}
	if s := rd.d.sets[setKey{tableKey{rd.t.Family, rd.t.Name}, name}]; s != nil {
		m.Anonymous = s.Anonymous
		m.Elements = s.Elements
	}
	rd.r.Map = m
	rd.pending = rd.pending[:0]
	return nil
}

// canonical renders a term: each expression as name(attr=value,...), with
// register numbers renamed in the order they first appear, and set names
// qualified by their table.
func (rd *ruleDecoder) canonical(parts []Expr) (string, error) {
	if t, ok := ctStateTerm(parts); ok {
		return t, nil
	}
	var regs regNames
	b := rd.d.scratch[:0]
	for i, e := range parts {
		if i > 0 {
			b = append(b, ';')
		}
		as, err := parseAttrs(e.Data)
		if err != nil {
			return "", err
		}
		b = append(b, e.Name...)
		b = append(b, '(')
		for j, a := range as.all() {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(a.typ), 10)
			b = append(b, '=')
			switch {
			case isRegAttr(e.Name, a.typ):
				b = append(b, 'r')
				b = strconv.AppendUint(b, uint64(regs.name(a.data)), 10)
			case e.Name == "lookup" && a.typ == lookupSet:
				set := cstring(a.data)
				if s := rd.d.sets[setKey{tableKey{rd.t.Family, rd.t.Name}, set}]; s != nil && s.Anonymous {
					if k := s.contentKey(); k != "" {
						b = append(b, "{"+k+"}"...)
						continue
					}
				}
				b = append(b, rd.t.Family.String()...)
				b = append(b, '/')
				b = append(b, Printable(rd.t.Name)...)
				b = append(b, "/@"...)
				b = append(b, Printable(set)...)
			case isDataAttr(e.Name, a.typ):
				b = hex.AppendEncode(b, dataValueOf(a.data))
			default:
				b = hex.AppendEncode(b, a.data)
			}
		}
		b = append(b, ')')
	}
	rd.d.scratch = b
	return string(b), nil
}

// regAttrs lists, per expression, the attributes that hold a register.
var regAttrs = map[string][]uint16{
	"payload": {1, 5}, "cmp": {1}, "meta": {1, 3}, "ct": {1, 4}, "bitwise": {1, 2, 8},
	"byteorder": {1, 2}, "range": {1}, "lookup": {2, 3}, "exthdr": {1, 7}, "fib": {1},
	"rt": {1}, "socket": {2}, "numgen": {1}, "hash": {1, 2}, "osf": {1}, "xfrm": {1},
	"immediate": {1},
}

// dataAttrs lists the attributes that nest an NFTA_DATA_VALUE.
var dataAttrs = map[string][]uint16{
	"cmp": {3}, "range": {3, 4}, "bitwise": {4, 5, 7}, "immediate": {2},
}

func isRegAttr(name string, t uint16) bool  { return contains(regAttrs[name], t) }
func isDataAttr(name string, t uint16) bool { return contains(dataAttrs[name], t) }

func contains(s []uint16, v uint16) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// regNames renames registers in the order of their first use within a
// term.
type regNames struct {
	n     int
	slots [16]uint32
}

// name maps a register to its 32-bit slot, as the kernel does (NFT_REG_1..4
// are 16-byte registers over four slots each), then to its order of first
// use.
func (rn *regNames) name(b []byte) int {
	var r uint32
	if len(b) == 4 {
		r = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	slot := r
	switch {
	case r >= 1 && r <= 4:
		slot = r * 4
	case r >= 8:
		slot = r - 4
	}
	for i := 0; i < rn.n; i++ {
		if rn.slots[i] == slot {
			return i
		}
	}
	if rn.n == len(rn.slots) {
		return int(slot) + len(rn.slots) // a term never uses this many
	}
	rn.slots[rn.n] = slot
	rn.n++
	return rn.n - 1
}

// dataValueOf unwraps a nested NFTA_DATA_VALUE.
func dataValueOf(b []byte) []byte {
	as, err := parseAttrs(b)
	if err != nil {
		return b
	}
	if v, ok := as.get(dataValue); ok {
		return v
	}
	return b
}

// ctStateTerm recognises nft's "ct state S" (a ct state load, a bitwise
// mask and a compare with zero) and renders it as xtables' conntrack and
// state matches are rendered, so that both spellings compare equal.
func ctStateTerm(parts []Expr) (string, bool) {
	if len(parts) != 3 || parts[0].Name != "ct" || parts[1].Name != "bitwise" || parts[2].Name != "cmp" {
		return "", false
	}
	ct, err1 := parseAttrs(parts[0].Data)
	bw, err2 := parseAttrs(parts[1].Data)
	cmp, err3 := parseAttrs(parts[2].Data)
	if err1 != nil || err2 != nil || err3 != nil {
		return "", false
	}
	if key, ok := ct.u32(ctKey); !ok || key != ctKeyState || ct.has(3) {
		return "", false
	}
	reg, _ := ct.get(1)
	if !regEqual(reg, &bw, bitwiseSreg) || !regEqual(reg, &bw, bitwiseDreg) || !regEqual(reg, &cmp, cmpSreg) {
		return "", false
	}
	if op, ok := bw.u32(bitwiseOp); ok && op != 0 {
		return "", false
	}
	mask, ok1 := dataU32(&bw, bitwiseMask)
	xor, ok2 := dataU32(&bw, bitwiseXor)
	val, ok3 := dataU32(&cmp, cmpData)
	op, ok4 := cmp.u32(cmpOp)
	if !ok1 || !ok2 || !ok3 || !ok4 || xor != 0 || val != 0 {
		return "", false
	}
	switch op {
	case cmpOpNeq:
		return ctStateText(mask, false), true
	case cmpOpEq:
		return ctStateText(mask, true), true
	}
	return "", false
}

func regEqual(reg []byte, as *attrs, t uint16) bool {
	b, ok := as.get(t)
	return ok && string(b) == string(reg)
}

// dataU32 reads a nested NFTA_DATA_VALUE of 4 bytes in the host's order
// (ct state is a host-order bitmask).
func dataU32(as *attrs, t uint16) (uint32, bool) {
	inner, err := as.nested(t)
	if err != nil {
		return 0, false
	}
	v, ok := inner.get(dataValue)
	if !ok || len(v) != 4 {
		return 0, false
	}
	return nativeU32(v), true
}

// ctStateText is the canonical term of a conntrack state test, in nft's
// state bits (invalid 1, established 2, related 4, new 8, untracked 64).
func ctStateText(mask uint32, none bool) string {
	if none {
		return fmt.Sprintf("ct-state-none(%#x)", mask)
	}
	return fmt.Sprintf("ct-state-any(%#x)", mask)
}
