package ruleset

import (
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/internal/nlmsg"
)

// counters lists every rule's and base chain's counter of s, in order.
func counters(s *Snapshot) []Counter {
	var out []Counter
	for _, c := range s.Chains() {
		if c.Base != nil && c.Base.Counter != nil {
			out = append(out, *c.Base.Counter)
		}
		for _, r := range c.Rules {
			if r.Counter != nil {
				out = append(out, *r.Counter)
			}
		}
	}
	return out
}

func zeroCounters(s *Snapshot) {
	for _, c := range s.Chains() {
		if c.Base != nil && c.Base.Counter != nil {
			*c.Base.Counter = Counter{}
		}
		for _, r := range c.Rules {
			if r.Counter != nil {
				*r.Counter = Counter{}
			}
		}
	}
}

// TestRecountRecorded: recounting a snapshot from its own messages restores
// exactly the counters a decode reads; messages of another ruleset or
// generation are refused.
func TestRecountRecorded(t *testing.T) {
	for _, name := range []string{"ufw.nlmsg", "firewalld.nlmsg"} {
		b := recorded(t, name)
		s, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		want := counters(s)
		if len(want) == 0 && name == "ufw.nlmsg" {
			t.Fatalf("%s: no counters to compare", name)
		}
		zeroCounters(s)
		if ok, err := s.Recount(b); !ok || err != nil {
			t.Fatalf("%s: Recount of its own messages: %v, %v", name, ok, err)
		}
		if got := counters(s); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: recounted %v\nwant %v", name, got, want)
		}
		other := recorded(t, map[string]string{"ufw.nlmsg": "firewalld.nlmsg", "firewalld.nlmsg": "ufw.nlmsg"}[name])
		if ok, _ := s.Recount(other); ok {
			t.Errorf("%s: recounted from another ruleset", name)
		}
		if ok, _ := s.Recount(withGeneration(t, b, s.Generation+1)); ok {
			t.Errorf("%s: recounted from another generation", name)
		}
	}
}

// withGeneration returns a copy of b whose NEWGEN message says gen.
func withGeneration(t *testing.T, b []byte, gen uint32) []byte {
	t.Helper()
	out := append([]byte(nil), b...)
	m := nlmsg.NewMessages(out)
	for m.Next() {
		if m.Type>>8 != subsysNFTables || m.Type&0xff != msgNewGen {
			continue
		}
		a := nlmsg.NewAttrs(m.Data[4:])
		for a.Next() {
			if a.Type == genID && len(a.Data) == 4 {
				binary.BigEndian.PutUint32(a.Data, gen) // a.Data aliases out
				return out
			}
		}
	}
	t.Fatal("no generation id in the messages")
	return nil
}

// FuzzRecount: Recount never panics, and when it accepts messages (those
// of another snapshot, or a snapshot's own), their counters are those a
// decode reads.
func FuzzRecount(f *testing.F) {
	// The snapshot every input is recounted into: ufw's first messages,
	// also a seed, so that inputs with their structure are accepted.
	ufw := nlmsg.Prefix(recorded(f, "ufw.nlmsg"), maxFuzzInput)
	if base, err := Decode(ufw); err != nil || len(counters(base)) == 0 {
		f.Fatalf("the first %d bytes of ufw.nlmsg: %v, %d counters", len(ufw), err, len(counters(base)))
	} else if ok, err := base.Recount(ufw); !ok || err != nil {
		f.Fatalf("the first %d bytes of ufw.nlmsg do not recount themselves: %v, %v", len(ufw), ok, err)
	}
	f.Add(ufw)
	addRecordedSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzInput {
			return
		}
		base, err := Decode(ufw)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := base.Recount(b)
		d, derr := Decode(b)
		if ok && err == nil && derr == nil && !reflect.DeepEqual(counters(base), counters(d)) {
			t.Fatalf("recounted %v, decoded %v", counters(base), counters(d))
		}
		if derr != nil {
			return
		}
		want := counters(d)
		zeroCounters(d)
		ok, err = d.Recount(b)
		if ok && (err != nil || d.expiring) {
			t.Fatalf("Recount of its own messages: %v, %v (expiring %v)", ok, err, d.expiring)
		}
		if ok && !reflect.DeepEqual(counters(d), want) {
			t.Fatalf("recounted %v, want %v", counters(d), want)
		}
	})
}
