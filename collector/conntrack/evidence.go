package conntrack

// Evidence is what conntrack says about the connection a teardown-shaped
// drop belongs to.
type Evidence uint8

const (
	// EvidenceDestroyed: conntrack destroyed the flow within the window
	// before the packet (or during the hold after it).
	EvidenceDestroyed Evidence = iota
	// EvidenceClosing: the flow is still in the table in a closing state
	// (FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE).
	EvidenceClosing
	// EvidenceEstablished: the flow is in the table and not closing
	// (ESTABLISHED, or still in the handshake: SYN_SENT, SYN_RECV): the
	// drop is an out-of-window or otherwise invalid segment of a live
	// connection.
	EvidenceEstablished
	// EvidenceNone: no trace of the flow, neither remembered nor in the
	// table. What a scan (nmap -sA, -sM) gets.
	EvidenceNone
	// EvidenceSkipped: not determined: the lookup budget was spent, the
	// hold queue was full, the lookup failed, or conntrack events were
	// not available at the time.
	EvidenceSkipped
	NumEvidence
)

var evidenceNames = [NumEvidence]string{"destroyed", "closing", "established", "none", "skipped"}

func (e Evidence) String() string {
	if e < NumEvidence {
		return evidenceNames[e]
	}
	return "unknown"
}

// TCP states as the kernel numbers them (enum tcp_conntrack).
const (
	tcpNone        = 0
	tcpSynSent     = 1
	tcpSynRecv     = 2
	tcpEstablished = 3
	tcpFinWait     = 4
	tcpCloseWait   = 5
	tcpLastAck     = 6
	tcpTimeWait    = 7
	tcpClose       = 8
	tcpSynSent2    = 9
)

// evidenceForState maps a live entry's TCP state to evidence.
func evidenceForState(state uint8) Evidence {
	switch state {
	case tcpFinWait, tcpCloseWait, tcpLastAck, tcpTimeWait, tcpClose:
		return EvidenceClosing
	}
	return EvidenceEstablished
}

// Looker finds the live conntrack entry of a TCP tuple. The kernel's
// conntrack hash holds both directions of every entry, so one lookup with
// the packet's own tuple finds the entry whichever way it was recorded.
type Looker interface {
	// Lookup returns the entry's TCP state; found is false when there is no
	// entry. err is a failed lookup (not "no entry").
	Lookup(t *Tuple) (state uint8, found bool, err error)
}
