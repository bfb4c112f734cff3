package ruleset

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/nfdrop/nfdrop_exporter/collector/internal/nlmsg"
)

// Decode builds a snapshot from nf_tables netlink messages as the kernel
// sends them in reply to dumps (NEWGEN, NEWTABLE, NEWCHAIN, NEWSET,
// NEWSETELEM, NEWOBJ, NEWRULE), concatenated in any order; other messages
// (NLMSG_DONE) are skipped. Names keep their bytes. A malformed message is
// an error that names it; Decode never panics. The rules' Expr.Data alias
// b: do not change b while the snapshot is in use.
func Decode(b []byte) (*Snapshot, error) {
	d := newDecoder()
	m := nlmsg.NewMessages(b)
	for i := 0; m.Next(); i++ {
		if err := d.message(m.Type, m.Data); err != nil {
			return nil, fmt.Errorf("nf_tables message %d: %w", i, err)
		}
	}
	if m.Bad {
		return nil, fmt.Errorf("malformed netlink message header")
	}
	return d.finish()
}

type tableKey struct {
	family Family
	name   string
}

type setKey struct {
	table tableKey
	name  string
}

// rawRule is a rule message kept until every chain, set and object is known.
type rawRule struct {
	table  tableKey
	chain  string
	handle uint64
	exprs  []byte
	udata  []byte
}

type decoder struct {
	snap     *Snapshot
	tables   map[tableKey]*Table
	chains   map[setKey]*Chain // by table and chain name
	sets     map[setKey]*Set
	counters map[setKey]*Counter // named counter objects
	limits   map[setKey]string   // named limit objects' rates
	rules    []rawRule
	elems    []rawElems
	scratch  []byte // reused to build terms
	// reused from rule to rule
	list    []attr
	pending []Expr
	terms   []string
}

type rawElems struct {
	set  setKey
	list []byte
}

func newDecoder() *decoder {
	return &decoder{snap: &Snapshot{}, tables: map[tableKey]*Table{}, chains: map[setKey]*Chain{}, sets: map[setKey]*Set{},
		counters: map[setKey]*Counter{}, limits: map[setKey]string{}}
}

func (d *decoder) message(typ uint16, data []byte) error {
	if typ>>8 != subsysNFTables {
		return nil // NLMSG_DONE and the like
	}
	if len(data) < 4 {
		return fmt.Errorf("nf_tables message shorter than its header")
	}
	fam := Family(data[0])
	as, err := parseAttrs(data[4:])
	if err != nil {
		return err
	}
	switch typ & 0xff {
	case msgNewGen:
		d.snap.Generation, _ = as.u32(genID)
	case msgNewTable:
		return d.table(fam, &as)
	case msgNewChain:
		return d.chain(fam, &as)
	case msgNewSet:
		return d.set(fam, &as)
	case msgNewSetElem:
		return d.setElems(fam, &as)
	case msgNewObj:
		return d.object(fam, &as)
	case msgNewRule:
		return d.rule(fam, &as)
	}
	return nil
}

func (d *decoder) table(fam Family, as *attrs) error {
	name, ok := as.get(tableName)
	if !ok {
		return fmt.Errorf("table without a name")
	}
	k := tableKey{fam, cstring(name)}
	if d.tables[k] != nil {
		return fmt.Errorf("table %s %s listed twice", fam, Printable(k.name))
	}
	t := &Table{Family: fam, Name: k.name}
	t.Flags, _ = as.u32(tableFlags)
	t.Handle, _ = as.u64(tableHandle)
	d.tables[k] = t
	d.snap.Tables = append(d.snap.Tables, t)
	return nil
}

// tableOf finds the table a message names, creating none.
func (d *decoder) tableOf(fam Family, as *attrs, attr uint16, what string) (*Table, error) {
	name, ok := as.get(attr)
	if !ok {
		return nil, fmt.Errorf("%s without a table", what)
	}
	t := d.tables[tableKey{fam, cstring(name)}]
	if t == nil {
		return nil, fmt.Errorf("%s of unknown table %s %s", what, fam, Printable(cstring(name)))
	}
	return t, nil
}

func (d *decoder) chain(fam Family, as *attrs) error {
	t, err := d.tableOf(fam, as, chainTable, "chain")
	if err != nil {
		return err
	}
	name, ok := as.get(chainName)
	if !ok {
		return fmt.Errorf("chain without a name")
	}
	c := &Chain{Table: t, Name: cstring(name)}
	ck := setKey{tableKey{fam, t.Name}, c.Name}
	if d.chains[ck] != nil {
		return fmt.Errorf("chain %s listed twice", Printable(c.Name))
	}
	d.chains[ck] = c
	c.Handle, _ = as.u64(chainHandle)
	if as.has(chainHook) {
		hook, err := as.nested(chainHook)
		if err != nil {
			return fmt.Errorf("chain %s hook: %w", Printable(c.Name), err)
		}
		b := &BaseChain{Type: as.str(chainType), Policy: Accept}
		b.Hook, _ = hook.u32(hookNum)
		prio, _ := hook.u32(hookPriority)
		b.Priority = int32(prio)
		if dev, ok := hook.get(hookDev); ok {
			b.Devices = append(b.Devices, cstring(dev))
		}
		if devs, ok := hook.get(hookDevs); ok {
			list, err := parseList(devs)
			if err != nil {
				return fmt.Errorf("chain %s devices: %w", Printable(c.Name), err)
			}
			for _, a := range list {
				b.Devices = append(b.Devices, cstring(a.data))
			}
		}
		if p, ok := as.u32(chainPolicy); ok && p == codeDrop {
			b.Policy = Drop
		}
		if as.has(chainCounters) {
			cs, err := as.nested(chainCounters)
			if err != nil {
				return fmt.Errorf("chain %s counters: %w", Printable(c.Name), err)
			}
			if b.Counter, err = counterFrom(&cs); err != nil {
				return fmt.Errorf("chain %s: %w", Printable(c.Name), err)
			}
		}
		c.Base = b
	}
	t.Chains = append(t.Chains, c)
	return nil
}

func (d *decoder) set(fam Family, as *attrs) error {
	t, err := d.tableOf(fam, as, setTable, "set")
	if err != nil {
		return err
	}
	name, ok := as.get(setName)
	if !ok {
		return fmt.Errorf("set without a name")
	}
	s := &Set{Name: cstring(name)}
	s.Flags, _ = as.u32(setFlags)
	s.KeyType, _ = as.u32(setKeyType)
	s.DataType, _ = as.u32(setDataType)
	s.Anonymous = s.Flags&setFlagAnon != 0
	k := setKey{tableKey{fam, t.Name}, s.Name}
	if d.sets[k] != nil {
		return fmt.Errorf("set %s listed twice", Printable(s.Name))
	}
	d.sets[k] = s
	t.Sets = append(t.Sets, s)
	return nil
}

// setElems keeps an element list until its set is known.
func (d *decoder) setElems(fam Family, as *attrs) error {
	tbl, ok1 := as.get(setElemListTable)
	set, ok2 := as.get(setElemListSet)
	if !ok1 || !ok2 {
		return fmt.Errorf("set elements without table and set")
	}
	list, _ := as.get(setElemListElements)
	d.elems = append(d.elems, rawElems{setKey{tableKey{fam, cstring(tbl)}, cstring(set)}, list})
	return nil
}

func (d *decoder) object(fam Family, as *attrs) error {
	t, err := d.tableOf(fam, as, objTable, "object")
	if err != nil {
		return err
	}
	typ, _ := as.u32(objType)
	k := setKey{tableKey{fam, t.Name}, as.str(objName)}
	data, err := as.nested(objData)
	if err != nil {
		return fmt.Errorf("object %s: %w", Printable(k.name), err)
	}
	switch typ {
	case objectCounter:
		c, err := counterFrom(&data)
		if err != nil {
			return fmt.Errorf("counter %s: %w", Printable(k.name), err)
		}
		d.counters[k] = c
	case objectLimit:
		d.limits[k] = limitText(&data)
	}
	return nil
}

func (d *decoder) rule(fam Family, as *attrs) error {
	tbl, ok1 := as.get(ruleTable)
	chain, ok2 := as.get(ruleChain)
	if !ok1 || !ok2 {
		return fmt.Errorf("rule without table and chain")
	}
	r := rawRule{table: tableKey{fam, ""}}
	// Rules come chain by chain: most share the previous rule's names.
	if n := len(d.rules); n > 0 && d.rules[n-1].table.family == fam && sameName(d.rules[n-1].table.name, tbl) && sameName(d.rules[n-1].chain, chain) {
		r.table.name, r.chain = d.rules[n-1].table.name, d.rules[n-1].chain
	} else {
		r.table.name, r.chain = cstring(tbl), cstring(chain)
	}
	r.handle, _ = as.u64(ruleHandle)
	r.exprs, _ = as.get(ruleExpressions)
	r.udata, _ = as.get(ruleUserdata)
	d.rules = append(d.rules, r)
	return nil
}

// finish attaches set elements and rules, in the order the kernel sent them.
func (d *decoder) finish() (*Snapshot, error) {
	for _, e := range d.elems {
		s := d.sets[e.set]
		if s == nil {
			return nil, fmt.Errorf("elements of unknown set %s", Printable(e.set.name))
		}
		if err := s.addElements(e.list); err != nil {
			return nil, fmt.Errorf("elements of set %s: %w", Printable(s.Name), err)
		}
	}
	objUse := map[setKey]int{}
	rules := make([]*Rule, 0, len(d.rules))
	objs := make([]setKey, 0, len(d.rules))
	for _, raw := range d.rules {
		t := d.tables[raw.table]
		if t == nil {
			return nil, fmt.Errorf("rule of unknown table %s %s", raw.table.family, Printable(raw.table.name))
		}
		c := d.chains[setKey{raw.table, raw.chain}]
		if c == nil {
			return nil, fmt.Errorf("rule of unknown chain %s in table %s", Printable(raw.chain), Printable(t.Name))
		}
		r := &Rule{Chain: c, Handle: raw.handle, Index: len(c.Rules), Comment: ruleComment(raw.udata)}
		rd := ruleDecoder{d: d, t: t, r: r, pending: d.pending[:0]}
		err := rd.decode(raw.exprs)
		d.pending = rd.pending
		if err != nil {
			return nil, fmt.Errorf("rule %d of chain %s: %w", raw.handle, Printable(c.Name), err)
		}
		k := setKey{raw.table, rd.counterObj}
		if rd.counterObj != "" {
			objUse[k]++
		}
		c.Rules = append(c.Rules, r)
		rules = append(rules, r)
		objs = append(objs, k)
	}
	// A named counter that several rules share counts for all of them:
	// it is no rule's exact count.
	for i, r := range rules {
		if k := objs[i]; k.name != "" && objUse[k] > 1 {
			r.CounterExact = false
		}
	}
	d.snap.rules = rules
	for _, t := range d.snap.Tables {
		for _, s := range t.Sets {
			if s.IsVerdictMap() && s.Flags&(setFlagTimeout|setFlagEval) != 0 {
				d.snap.expiring = true
			}
		}
	}
	return d.snap, nil
}

// addElements reads an NFTA_SET_ELEM_LIST_ELEMENTS list: a verdict map's
// keys and verdicts, and an anonymous set's content.
func (s *Set) addElements(list []byte) error {
	elems, err := parseList(list)
	if err != nil {
		return err
	}
	for _, el := range elems {
		if el.typ != listElem {
			continue
		}
		if s.Anonymous {
			s.content = append(s.content, el.data)
		}
		as, err := parseAttrs(el.data)
		if err != nil {
			return err
		}
		data, ok := as.get(setElemData)
		if !ok || !s.IsVerdictMap() {
			continue // an interval's end, or a plain set
		}
		inner, err := parseAttrs(data)
		if err != nil {
			return err
		}
		vb, ok := inner.get(dataVerdict)
		if !ok {
			continue
		}
		v, err := verdictFrom(vb)
		if err != nil {
			return err
		}
		var key []byte
		if kn, err := as.nested(setElemKey); err == nil {
			if kv, ok := kn.get(dataValue); ok {
				key = kv
			}
		}
		s.Elements = append(s.Elements, MapElement{Key: key, Verdict: v})
	}
	return nil
}

// contentKey names an anonymous set by what it holds, so that the same
// "{ 80, 443 }" written in two rules compares equal; "" when its elements
// were not read.
func (s *Set) contentKey() string {
	if len(s.content) == 0 {
		return ""
	}
	sorted := slices.Clone(s.content)
	slices.SortFunc(sorted, bytes.Compare)
	h := sha256.New()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], s.KeyType)
	h.Write(n[:])
	for _, e := range sorted {
		binary.BigEndian.PutUint32(n[:], uint32(len(e)))
		h.Write(n[:])
		h.Write(e)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// ruleComment reads the comment from a rule's user data (NFTNL_UDATA_RULE_COMMENT:
// type 0, a length byte and a NUL-terminated string).
func ruleComment(b []byte) string {
	for len(b) >= 2 {
		typ, l := b[0], int(b[1])
		if 2+l > len(b) {
			return ""
		}
		if typ == 0 {
			return cstring(b[2 : 2+l])
		}
		b = b[2+l:]
	}
	return ""
}
