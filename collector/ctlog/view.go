package ctlog

// DropReasons returns a group's drops by conntrack's reason, summed over
// classes, for the landing page; ok is false when drops are not joined to
// reasons or the group is not read.
func (l *Log) DropReasons(group uint16) (drops map[string]uint64, ok bool) {
	gs := l.groups[group]
	if l.table == nil || gs == nil {
		return nil, false
	}
	l.resolve()
	drops = map[string]uint64{}
	for c := range gs.drops {
		for r := range gs.drops[c] {
			if n := gs.drops[c][r].Load(); n > 0 {
				drops[Reason(r).String()] += n
			}
		}
	}
	return drops, true
}
