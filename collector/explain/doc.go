package explain

// JSON output (--format=json), schema_version 1. Stable: fields are only ever
// added; none is removed, renamed or changes meaning within a schema version.
//
//	{
//	  "schema_version": 1,
//	  "inputs": [                       // one object per input, in argument order
//	    {"name": "kern.log",            // the path as given; "(stdin)" for standard input
//	     "format": "text",              // "text", "pcap" or "pcapng"
//	     "lines": 2500000,              // text lines, or capture records
//	     "packets": 2000000,            // classified packets
//	     "ignored": 500000,             // non-firewall lines / non-IP frames
//	     "unparsed": 0,                 // firewall lines (or NFLOG records) not understood
//	     "not_kernel": 0}               // firewall-like lines another program wrote (not counted)
//	  ],
//	  "total": 2000000,                 // packets classified, all inputs
//	  "unparsed": 0,                    // lines not understood, all inputs
//	  "ignored": 500000,                // lines that are not firewall lines, all inputs
//	  "not_kernel": 0,                  // firewall-like lines from other programs, all inputs
//	  "classes": {                      // class -> packets; all six classes always present
//	    "teardown": 0, "handshake": 0, "probe": 0, "other": 0, "fragment": 0, "malformed": 0},
//	  "series": [                       // one object per nfdrop_packets_total series minus group,
//	    {"prefix": "iptables denied:",  // same label names and values as the exporter's metric;
//	     "family": "ipv4",              // sorted by count (descending), then by labels
//	     "proto": "tcp",
//	     "port": "443",
//	     "side": "client",
//	     "flags": "ACK,FIN",
//	     "class": "teardown",
//	     "count": 12003}
//	  ],
//	  "prefixes": [{"prefix": "iptables denied:", "count": 12403}],  // by count, descending
//	  "time_span": {                    // null when the input has no timestamps
//	    "clock": "wall",                // "wall": RFC 3339 first/last;
//	                                    // "syslog": year-less local time "Jan _2 15:04:05.999999";
//	                                    // "uptime": seconds since boot (dmesg), e.g. "1485.392167"
//	    "first": "2026-11-25T13:34:54Z",
//	    "last": "2026-11-25T14:02:11Z",
//	    "seconds": 1637},
//	  "unparsed_lines": [               // the first 5 lines not understood; text is the
//	    {"input": "kern.log",           // line's first 300 bytes with control characters,
//	     "line": 1234, "reason": "...", // unprintable runes and invalid UTF-8 written as Go
//	     "text": "..."}],               // escapes (\x1b, \u202e) and a backslash as \\
//	  "verdict": "96.8% of 12,403 drops are late TCP teardown ..."
//	}
//
// The prefix label follows the exporter (package classify): surrounding
// whitespace trimmed, bytes that are not UTF-8 shown as U+FFFD, a rule prefix
// "(other)" shown as "((other))", at most Options.MaxPrefixes (1 to 254,
// default 32) distinct values, later ones "(other)".
// A LOG line carries no NFLOG group, hence no group label. When inputs carry
// different clocks (wall-clock and year-less syslog times, dmesg uptimes),
// time_span uses the best present, in that order.
//
// Only the kernel's own lines are packets. A syslog line tagged "name[pid]:"
// (sshd[123]:, ulogd[812]:, whatever logger(1) writes) and a journal entry
// whose _TRANSPORT is not "kernel" are counted in not_kernel, not as packets
// and not as unparsed: any local user can write such a line, so it is no
// evidence of a dropped packet. Lines without a tag (dmesg, /dev/kmsg,
// ulogd's LOGEMU file) are read as the kernel's.
//
// What a LOG line cannot say, and how it is counted: a TCP header of fewer
// than 20 bytes is printed as "INCOMPLETE [n bytes]" without flags, so it is
// malformed (a capture of the same packet classifies it when at least the 14
// bytes up to the flags are present); IPv4 AH is printed without the header
// behind it, so its proto is "other"; SCTP ports are not printed, so SCTP has
// no port/side; an IPv6 line that ends after FLOWLBL= is an ESP packet (the
// kernel prints nothing for ESP without --log-ip-options).
