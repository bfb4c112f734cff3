package ruleset

import (
	"fmt"

	"github.com/nfdrop/nfdrop_exporter/collector/internal/nlmsg"
)

// Recount sets the counters of s (its rules' and its base chains') to those
// in b, messages of a later read as Decode takes them, when b holds the same
// ruleset: the generation of s, and the same tables, chains and rules in
// the same order. Within one generation the kernel changes no more than
// counters (verdict maps whose elements can expire or be updated from the
// packet path aside: s never recounts then), so whatever was derived from the structure of s still
// holds, and recounting costs far less than decoding b.
//
// It reports false when b holds another ruleset, and an error when b is
// malformed; in both cases the counters of s may be partly changed: discard
// s and decode b. Names, Exprs and everything else of s keep aliasing the
// messages s was decoded from.
func (s *Snapshot) Recount(b []byte) (bool, error) {
	if s.expiring || len(s.rules) != s.RuleCount() {
		return false, nil
	}
	var objs map[setKey]Counter // named counters, when a rule refers to one
	type ref struct {
		r    *Rule
		name string
	}
	var refs []ref
	gen, tables, chains, rules := false, 0, 0, 0
	m := nlmsg.NewMessages(b)
	for m.Next() {
		if m.Type>>8 != subsysNFTables {
			continue
		}
		if len(m.Data) < 4 {
			return false, fmt.Errorf("nf_tables message shorter than its header")
		}
		fam := Family(m.Data[0])
		as, err := parseAttrs(m.Data[4:])
		if err != nil {
			return false, err
		}
		switch m.Type & 0xff {
		case msgNewGen:
			if id, ok := as.u32(genID); !ok || id != s.Generation {
				return false, nil
			}
			gen = true
		case msgNewTable:
			tables++
			name, _ := as.get(tableName)
			if s.table(fam, name) == nil {
				return false, nil
			}
		case msgNewChain:
			chains++
			if ok, err := s.recountChain(fam, &as); !ok || err != nil {
				return false, err
			}
		case msgNewObj:
			if typ, _ := as.u32(objType); typ != objectCounter {
				continue
			}
			t, _ := as.get(objTable)
			data, err := as.nested(objData)
			if err != nil {
				return false, err
			}
			c, err := counterOf(&data)
			if err != nil {
				return false, err
			}
			if objs == nil {
				objs = map[setKey]Counter{}
			}
			objs[setKey{tableKey{fam, cstring(t)}, as.str(objName)}] = c
		case msgNewRule:
			if rules == len(s.rules) {
				return false, nil
			}
			r := s.rules[rules]
			rules++
			name, ok, err := recountRule(r, fam, &as)
			if !ok || err != nil {
				return false, err
			}
			if name != "" {
				refs = append(refs, ref{r, name})
			}
		}
	}
	if m.Bad {
		return false, fmt.Errorf("malformed netlink message header")
	}
	if !gen || tables != len(s.Tables) || chains != len(s.Chains()) || rules != len(s.rules) {
		return false, nil
	}
	for _, ref := range refs {
		t := ref.r.Chain.Table
		c, ok := objs[setKey{tableKey{t.Family, t.Name}, ref.name}]
		if !ok {
			return false, nil
		}
		*ref.r.Counter = c
	}
	return true, nil
}

// table finds a table by family and NUL-terminated name.
func (s *Snapshot) table(f Family, name []byte) *Table {
	for _, t := range s.Tables {
		if t.Family == f && sameName(t.Name, name) {
			return t
		}
	}
	return nil
}

// recountChain sets the counter of the chain a NEWCHAIN message describes.
func (s *Snapshot) recountChain(fam Family, as *attrs) (bool, error) {
	tn, _ := as.get(chainTable)
	t := s.table(fam, tn)
	if t == nil {
		return false, nil
	}
	name, _ := as.get(chainName)
	var c *Chain
	for _, x := range t.Chains {
		if sameName(x.Name, name) {
			c = x
			break
		}
	}
	if c == nil {
		return false, nil
	}
	if h, _ := as.u64(chainHandle); h != c.Handle || (c.Base != nil) != as.has(chainHook) {
		return false, nil
	}
	hasCounter := c.Base != nil && c.Base.Counter != nil
	if !hasCounter {
		return !(c.Base != nil && as.has(chainCounters)), nil
	}
	cs, err := as.nested(chainCounters)
	if err != nil {
		return false, err
	}
	n, err := counterOf(&cs)
	if err != nil {
		return false, nil // the chain had a counter: it is another chain
	}
	*c.Base.Counter = n
	return true, nil
}

// recountRule sets the counter of r from its NEWRULE message, or returns
// the name of the counter object r refers to for its counter.
func recountRule(r *Rule, fam Family, as *attrs) (obj string, ok bool, err error) {
	tn, _ := as.get(ruleTable)
	cn, _ := as.get(ruleChain)
	h, _ := as.u64(ruleHandle)
	c := r.Chain
	if h != r.Handle || fam != c.Table.Family || !sameName(c.Table.Name, tn) || !sameName(c.Name, cn) {
		return "", false, nil
	}
	list, _ := as.get(ruleExpressions)
	i, want := 0, r.counterAt-1
	a := nlmsg.NewAttrs(list)
	for a.Next() {
		if a.Type != listElem {
			continue
		}
		if i != want {
			i++
			continue
		}
		es, err := parseAttrs(a.Data)
		if err != nil {
			return "", false, err
		}
		name, _ := es.get(exprName)
		data, err := es.nested(exprData)
		if err != nil {
			return "", false, err
		}
		switch {
		case sameName("counter", name):
			n, err := counterOf(&data)
			if err != nil {
				return "", false, err
			}
			*r.Counter = n
			return "", true, nil
		case sameName("objref", name):
			return data.str(objrefName), true, nil
		}
		return "", false, nil
	}
	if a.Bad {
		return "", false, errBadAttr
	}
	// No expression at r's counter: right only for a rule without one.
	return "", want < 0 && i == len(r.Exprs), nil
}
