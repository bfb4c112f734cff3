package explain

import (
	"bufio"
	"io"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop_exporter/internal/logline"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// Text inputs go through a pipeline so that two cores share the work: this
// goroutine cuts lines into batches, two parsers parse alternate batches, and
// one counter takes the parsed batches back in input order (so the report,
// the sketches' tie-breaks and the line numbers of unparsed examples are the
// same as one goroutine would give). Batches are recycled: the steady state
// allocates nothing.

const (
	batchLines = 512
	numParsers = 2
	numBatches = 4 * numParsers
)

// batch is a run of lines and, once parsed, their outcomes.
type batch struct {
	text  []byte  // the lines, back to back
	ends  []int32 // end offset of each line in text
	first uint64  // line number of the first line
	recs  []parsedRec
	names []byte // prefixes and interface names of the parsed lines
}

type parsedRec struct {
	st              logline.Status
	reason          logline.Reason
	format          logline.Format
	timeKind        logline.TimeKind
	pkt             packet.Packet
	prefix, in, out [2]int32 // spans of names
	n               uint64
	ts              time.Time // the stamp for first/last seen
	t               time.Time // the record's own time and uptime, for the time span
	up              time.Duration
}

func newBatch() *batch {
	return &batch{text: make([]byte, 0, batchLines*256), ends: make([]int32, 0, batchLines),
		recs: make([]parsedRec, 0, batchLines), names: make([]byte, 0, batchLines*32)}
}

func (b *batch) line(i int) []byte {
	s := int32(0)
	if i > 0 {
		s = b.ends[i-1]
	}
	return b.text[s:b.ends[i]]
}

func (b *batch) keep(v []byte) [2]int32 {
	s := len(b.names)
	b.names = append(b.names, v...)
	return [2]int32{int32(s), int32(len(b.names))}
}

func (b *batch) name(s [2]int32) []byte { return b.names[s[0]:s[1]] }

// parse fills b.recs from b's lines.
func (b *batch) parse(p *logline.Parser, a *aggregator) {
	b.recs, b.names = b.recs[:0], b.names[:0]
	var rec logline.Record
	for i := range b.ends {
		st, reason := p.Parse(b.line(i), &rec)
		r := parsedRec{st: st, reason: reason}
		if st == logline.OK {
			r.format, r.timeKind, r.pkt, r.n = rec.Format, rec.TimeKind, rec.Packet, uint64(rec.Repeat)
			r.prefix, r.in, r.out = b.keep(rec.Prefix), b.keep(rec.In), b.keep(rec.Out)
			r.ts, r.t, r.up = a.stamp(&rec), rec.Time, rec.Uptime
		}
		b.recs = append(b.recs, r)
	}
}

func (a *aggregator) readText(in *input, br *bufio.Reader) error {
	free := make(chan *batch, numBatches)
	for range numBatches {
		free <- newBatch()
	}
	var toParse, parsed [numParsers]chan *batch
	for i := range numParsers {
		toParse[i], parsed[i] = make(chan *batch, numBatches), make(chan *batch, numBatches)
		go func(in, out chan *batch) {
			var p logline.Parser
			for b := range in {
				b.parse(&p, a)
				out <- b
			}
			close(out)
		}(toParse[i], parsed[i])
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := 0; ; seq++ {
			b, ok := <-parsed[seq%numParsers]
			if !ok {
				return
			}
			a.count(in, b)
			free <- b
		}
	}()
	err := a.cutLines(br, free, toParse)
	for i := range numParsers {
		close(toParse[i])
	}
	<-done
	return err
}

// cutLines reads lines into batches and hands them to the parsers in turn.
func (a *aggregator) cutLines(br *bufio.Reader, free chan *batch, toParse [numParsers]chan *batch) error {
	var (
		long []byte
		n    uint64
		seq  int
	)
	cur := <-free
	cur.text, cur.ends, cur.first = cur.text[:0], cur.ends[:0], 1
	send := func() {
		toParse[seq%numParsers] <- cur
		seq++
		cur = <-free
		cur.text, cur.ends, cur.first = cur.text[:0], cur.ends[:0], n+1
	}
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long[:0], line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				if len(long) < maxLine {
					long = append(long, line[:min(len(line), maxLine-len(long))]...)
				}
			}
			line = long
		}
		if len(line) > 0 {
			n++
			cur.text = append(cur.text, line...)
			cur.ends = append(cur.ends, int32(len(cur.text)))
			if len(cur.ends) == batchLines || len(cur.text) > 1<<20 {
				send()
			}
		}
		if err != nil {
			if len(cur.ends) > 0 {
				send()
			}
			free <- cur
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// count adds a parsed batch to the report, in input order.
func (a *aggregator) count(in *input, b *batch) {
	for i := range b.recs {
		r := &b.recs[i]
		in.lines++
		switch r.st {
		case logline.OK:
			in.packets += r.n
			in.formats[r.format]++
			a.add(&r.pkt, b.name(r.prefix), b.name(r.in), b.name(r.out), r.n, r.ts)
			a.span.observe(r.timeKind, r.t, r.up)
		case logline.Unparsed:
			in.unparsed++
			a.unparsed(in, b.first+uint64(i), r.reason.String(), b.line(i))
		case logline.NotKernel:
			in.notKernel++
		case logline.NoEntries:
			in.journalMeta++
			in.noEntries = true
		case logline.JournalMeta:
			in.journalMeta++
		default:
			in.ignored++
		}
	}
}
